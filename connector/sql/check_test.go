package sql_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/sql"
	"github.com/connkit/connkit/registry"
)

func checker() *check.Checker {
	reg := &registry.Registry{}
	reg.Register(sql.Type, sql.Connector{})
	return check.New(&check.Options{Registry: reg, Timeout: 3 * time.Second})
}

func wantReason(t *testing.T, err error, reason string, msg ...string) {
	t.Helper()
	var ce *check.Error
	if !errors.As(err, &ce) || ce.Reason != reason {
		t.Fatalf("check: %v (%+v), want reason %q", err, ce, reason)
	}
	for _, m := range msg {
		if !strings.Contains(ce.Message, m) {
			t.Errorf("message %q lacks %q", ce.Message, m)
		}
	}
}

func TestMySQLChecks(t *testing.T) {
	addr, user, pw := mysqlServer(t)
	url := "mysql://" + user + ":" + pw + "@" + addr + "/test"
	c := checker()
	ctx := context.Background()
	sink := func(extra map[string]any) error {
		p := map[string]any{"url": url}
		for k, v := range extra {
			p[k] = v
		}
		_, err := c.Sink(ctx, check.Request{Type: sql.Type, Props: p})
		return err
	}
	if err := sink(map[string]any{"table": "readings", "fields": []any{"id", "Temperature"}}); err != nil {
		t.Fatalf("good sink: %v", err)
	}
	wantReason(t, sink(map[string]any{"table": "nope"}), connector.ReasonMissing, `table "nope" does not exist`)
	wantReason(t, sink(map[string]any{"table": "readings", "fields": []any{"temperature", "pressure", "wind"}}),
		connector.ReasonMissing, "pressure, wind", "id, temperature, humidity")
	var ce *check.Error
	if err := sink(map[string]any{}); !errors.As(err, &ce) || !errors.Is(err, check.ErrInvalid) || ce.Fields[0].Field != "table" {
		t.Errorf("sink without table: %v", err)
	}
	if err := sink(map[string]any{"table": "readings", "fields": "id"}); !errors.Is(err, check.ErrInvalid) {
		t.Errorf("fields as a string: %v", err)
	}
	_, err := c.Sink(ctx, check.Request{Type: sql.Type, Props: map[string]any{"url": "mysql://" + user + ":" + pw + "@" + addr + "/nodb", "table": "t"}})
	// A limited user gets 1044 (access denied) for a database that does
	// not exist, not 1049: the server will not tell it which.
	wantReason(t, err, connector.ReasonUnauthorized, "nodb")

	source := func(extra map[string]any) error {
		p := map[string]any{"url": url}
		for k, v := range extra {
			p[k] = v
		}
		_, err := c.Source(ctx, check.Request{Type: sql.Type, Props: p})
		return err
	}
	if err := source(nil); err != nil {
		t.Errorf("source with no table: %v", err)
	}
	if err := source(map[string]any{"datasource": "readings", "query": "SELECT id FROM readings WHERE id > 3"}); err != nil {
		t.Errorf("good source: %v", err)
	}
	wantReason(t, source(map[string]any{"datasource": "gone"}), connector.ReasonMissing, "gone")
	if err := source(map[string]any{"query": "SELEC nonsense"}); !errors.As(err, &ce) || !errors.Is(err, check.ErrInvalid) || ce.Fields[0].Field != "query" {
		t.Errorf("bad query: %v", err)
	}
}

func TestSQLiteChecksCreateNothing(t *testing.T) {
	dir := t.TempDir()
	c := checker()
	ctx := context.Background()
	missing := filepath.Join(dir, "missing.db")
	_, err := c.Sink(ctx, check.Request{Type: sql.Type, Props: map[string]any{"url": "sqlite:" + missing, "table": "t"}})
	wantReason(t, err, connector.ReasonMissing, "does not exist")
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the check created %s", missing)
	}

	path := filepath.Join(dir, "data.db")
	m := newManager(t)
	if _, err := m.Create(ctx, connection.Spec{ID: "db", Type: sql.Type, Props: map[string]any{"url": "sqlite:" + path}}); err != nil {
		t.Fatal(err)
	}
	db, err := sql.DB(m.Attach(ctx, "db", "setup"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (a INTEGER, b TEXT)`); err != nil {
		t.Fatal(err)
	}
	m.Detach("db", "setup")
	before, _ := os.ReadFile(path)
	if _, err := c.Sink(ctx, check.Request{Type: sql.Type, Props: map[string]any{"url": "sqlite:" + path, "table": "t", "fields": []any{"a", "b"}}}); err != nil {
		t.Fatalf("sink on sqlite: %v", err)
	}
	_, err = c.Sink(ctx, check.Request{Type: sql.Type, Props: map[string]any{"url": "sqlite:" + path, "table": "t", "fields": []any{"c"}}})
	wantReason(t, err, connector.ReasonMissing, "no column c")
	_, err = c.Source(ctx, check.Request{Type: sql.Type, Props: map[string]any{"url": "sqlite:" + path, "table": "u"}})
	wantReason(t, err, connector.ReasonMissing, `table "u"`)
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("a check changed the database file")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "data.db" && !strings.HasPrefix(e.Name(), "data.db-") {
			t.Errorf("a check left %s behind", e.Name())
		}
	}
}

// TestMariaDBRestart: a stopped server makes the connection disconnected;
// it comes back on its own when the server does.
func TestMariaDBRestart(t *testing.T) {
	_, user, pw := mysqlServer(t)
	d := newMariaDB(t, user, pw)
	d.Start()
	m := newManager(t)
	ctx := context.Background()
	if _, err := m.Create(ctx, connection.Spec{ID: "db", Type: sql.Type, Props: map[string]any{"url": d.URL()}}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "db", connection.StateConnected, 10*time.Second)
	db, err := sql.DB(m.Attach(ctx, "db", "rule1/sink"))
	if err != nil {
		t.Fatal(err)
	}
	d.Stop()
	in := connectortest.WaitState(t, m, "db", connection.StateDisconnected, 10*time.Second)
	if in.Err == "" || strings.Contains(in.Err, pw) {
		t.Errorf("status while down: %+v", in.Status)
	}
	restart := time.Now()
	d.Start()
	up := time.Now()
	connectortest.WaitState(t, m, "db", connection.StateConnected, 20*time.Second)
	t.Logf("connected %v after MariaDB was restarted (%v after it answered)",
		time.Since(restart).Round(time.Millisecond), time.Since(up).Round(time.Millisecond))
	// The pool the rule holds works again.
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS back (a INT)`); err != nil {
		t.Errorf("the shared pool after the restart: %v", err)
	}
	m.Detach("db", "rule1/sink")
}
