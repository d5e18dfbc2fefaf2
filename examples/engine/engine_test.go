package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/sql"
	"github.com/connkit/connkit/store/sqlite"
)

// TestEngine runs the engine against the real mosquitto and MariaDB of
// make test, pushes readings over HTTP, and waits for them in the table.
func TestEngine(t *testing.T) {
	broker, db := os.Getenv("CONNKIT_MQTT_ADDR"), os.Getenv("CONNKIT_MYSQL_URL")
	if broker == "" || db == "" {
		t.Skip("CONNKIT_MQTT_ADDR and CONNKIT_MYSQL_URL are not set: run make test")
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "engine.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := connection.New(ctx, st, &connection.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	table := fmt.Sprintf("readings_%d", time.Now().UnixNano()%1e9)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	e, err := start(sctx, m, config{MQTT: "tcp://" + broker, DB: db, Push: "127.0.0.1:0", Table: table}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// Both rules hold the one MQTT connection.
	if in, _ := m.Get("broker"); in.RefCount != 2 {
		t.Errorf("broker refs %v, want the two rules", in.Refs)
	}
	const n = 20
	for i := range n {
		body := fmt.Sprintf(`{"device":"d%d","value":%d.5}`, i%3, i)
		res, err := http.Post("http://"+e.PushAddr()+"/ingest", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("push %d: %d", i, res.StatusCode)
		}
	}
	check, err := sql.DB(m.Attach(ctx, "warehouse", "test/check"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	var count int
	for {
		if err := check.GetContext(ctx, &count, `SELECT COUNT(*) FROM `+table); err != nil {
			t.Fatal(err)
		}
		if count == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if count != n {
		t.Fatalf("%d rows in %s, want %d", count, table, n)
	}
	var sum float64
	if err := check.GetContext(ctx, &sum, `SELECT SUM(value) FROM `+table); err != nil || sum != 200 {
		t.Errorf("sum of values %v %v, want 200", sum, err)
	}
	defer check.ExecContext(ctx, `DROP TABLE `+table)
	defer m.Detach("warehouse", "test/check")
	e.Stop()
	for _, id := range []string{"broker", "warehouse", "ingest"} {
		if in, _ := m.Get(id); in.RefCount != 0 && id != "warehouse" || in.RefCount > 1 {
			t.Errorf("%s keeps refs %v after Stop", id, in.Refs)
		}
	}
	// A restart declares the same connections: nothing changes, nothing
	// redials.
	before, _ := m.Get("broker")
	e, err = start(sctx, m, config{MQTT: "tcp://" + broker, DB: db, Push: "127.0.0.1:0", Table: table}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	e.Stop()
	for _, id := range []string{"broker", "warehouse", "ingest"} {
		if in, _ := m.Get(id); in.Version != 1 {
			t.Errorf("%s at version %d after a restart with the same config, want 1", id, in.Version)
		}
	}
	if after, _ := m.Get("broker"); after.Since != before.Since {
		t.Errorf("broker redialed at a restart with the same config: %v, then %v", before.Status, after.Status)
	}
}
