// Command engine is a small stream engine that embeds connkit: two rules
// on three shared connections (see engine.go).
//
//	go run ./examples/engine -mqtt tcp://127.0.0.1:1883 -db sqlite:readings.db
//	curl -XPOST 127.0.0.1:10081/ingest -d '{"device":"d1","value":21.5}'
//
// The connections are kept in an SQLite store, so the REST server
// (examples/server) pointed at the same -state file shows them, their
// status and the refs of the rules.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/connkit/connkit/connection"
	_ "github.com/connkit/connkit/connector/all"
	"github.com/connkit/connkit/store/sqlite"
)

func main() {
	var cfg config
	broker := "tcp://127.0.0.1:1883"
	if addr := os.Getenv("CONNKIT_MQTT_ADDR"); addr != "" {
		broker = "tcp://" + addr
	}
	flag.StringVar(&cfg.MQTT, "mqtt", broker, "MQTT broker URL (default from CONNKIT_MQTT_ADDR)")
	flag.StringVar(&cfg.DB, "db", envOr("CONNKIT_MYSQL_URL", "sqlite:readings.db"), "database URL for the readings (default from CONNKIT_MYSQL_URL)")
	flag.StringVar(&cfg.Push, "push", "127.0.0.1:10081", "listen address of the ingest endpoint")
	flag.StringVar(&cfg.Table, "table", "readings", "table of the readings")
	state := flag.String("state", "engine.db", "SQLite file of the connections")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, *state, log); err != nil {
		log.Error("engine failed", "err", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, cfg config, state string, log *slog.Logger) error {
	st, err := sqlite.Open(ctx, state)
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := connection.New(ctx, st, &connection.Options{Logger: log})
	if err != nil {
		return err
	}
	defer m.Close()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	e, err := start(sctx, m, cfg, log)
	if err != nil {
		return err
	}
	log.Info("engine running", "ingest", "http://"+e.PushAddr()+"/ingest", "mqtt", cfg.MQTT)
	<-ctx.Done()
	e.Stop()
	return nil
}
