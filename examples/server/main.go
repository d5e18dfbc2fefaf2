// Command server is the connkit REST server: every built-in connection
// type, stored in an embedded SQLite file.
//
//	go run ./examples/server                  # 127.0.0.1:9081, ./connkit.db
//	go run ./examples/server -addr 127.0.0.1:8080 -db /var/lib/connkit/connkit.db
//
// It stops cleanly on SIGINT or SIGTERM: in-flight requests finish, every
// live connection is closed, and the database is closed.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
	_ "github.com/connkit/connkit/connector/all"
	"github.com/connkit/connkit/store/sqlite"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9081", "address to serve the REST API on")
	db := flag.String("db", "connkit.db", "path of the SQLite database that stores the connections")
	keyFile := flag.String("secret-key-file", "", "file holding a base64 AES key (16, 24 or 32 bytes) that encrypts secret props at rest")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	key, err := readKey(*keyFile)
	if err != nil {
		log.Error("secret key", "err", err)
		os.Exit(2)
	}
	if err := run(ctx, *addr, *db, key, log); err != nil {
		log.Error("connkit server failed", "err", err)
		os.Exit(1)
	}
}

// readKey reads a base64 key from path; no path means no encryption.
func readKey(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: not base64: %v (make one with: head -c 32 /dev/urandom | base64)", path, err)
	}
	return key, nil
}

func run(ctx context.Context, addr, dbPath string, key []byte, log *slog.Logger) error {
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := connection.New(ctx, st, &connection.Options{Logger: log, SecretKey: key})
	if err != nil {
		if strings.Contains(err.Error(), "SecretKey") {
			return fmt.Errorf("%w (the server takes it with -secret-key-file)", err)
		}
		return err
	}
	defer m.Close()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (use -addr to pick another)", addr, err)
	}
	srv := &http.Server{
		Handler:           httpapi.New(m, &httpapi.Options{Logger: log}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	log.Info("connkit serving", "addr", "http://"+ln.Addr().String(), "db", dbPath, "connections", len(m.List()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("connkit shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
