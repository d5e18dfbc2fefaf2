// Command mount is an existing service that mounts the connkit REST API
// under /api/, behind its own bearer-token middleware, next to its own
// routes.
//
//	CONNKIT_TOKEN=s3cret go run ./examples/mount -addr 127.0.0.1:9082
//	curl -H 'Authorization: Bearer s3cret' http://127.0.0.1:9082/api/connections
package main

import (
	"context"
	"crypto/subtle"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
	_ "github.com/connkit/connkit/connector/all"
	"github.com/connkit/connkit/store/sqlite"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9082", "address to serve on")
	db := flag.String("db", "mount.db", "SQLite database of the connections")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	token := os.Getenv("CONNKIT_TOKEN")
	if token == "" {
		log.Error("set CONNKIT_TOKEN to the bearer token clients must send")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := sqlite.Open(ctx, *db)
	if err != nil {
		log.Error("open store", "err", err)
		os.Exit(1)
	}
	defer st.Close()
	m, err := connection.New(ctx, st, &connection.Options{Logger: log})
	if err != nil {
		log.Error("start manager", "err", err)
		os.Exit(1)
	}
	defer m.Close()
	srv := &http.Server{Addr: *addr, Handler: newService(m, token), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("serving", "addr", *addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Error("serve", "err", err)
	}
}

// newService is the service's own mux: its routes, and connkit under /api/.
func newService(m *connection.Manager, token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	api := http.StripPrefix("/api", httpapi.New(m, nil))
	mux.Handle("/api/", requireToken(token, api))
	return mux
}

// requireToken is the service's own auth: connkit does none.
func requireToken(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
