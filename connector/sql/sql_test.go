package sql_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/sql"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

func TestParse(t *testing.T) {
	cases := []struct {
		url, driver, dsn string
	}{
		{"mysql://root@127.0.0.1:3306/test", "mysql", "root@tcp(127.0.0.1:3306)/test"},
		{"mysql://root:p%40ss%3Aw@127.0.0.1:3306/test", "mysql", "root:p@ss:w@tcp(127.0.0.1:3306)/test"},
		{"mysql://u:p@[::1]:3307/db", "mysql", "u:p@tcp([::1]:3307)/db"},
		{"mariadb://u:p@127.0.0.1/db", "mysql", "u:p@tcp(127.0.0.1:3306)/db"},
		{"sqlite:/tmp/x.db", "sqlite3", "file:/tmp/x.db?"},
		{"sqlite3:relative/x.db", "sqlite3", "file:/"},
		{"sqlite::memory:", "sqlite3", "file::memory:?"},
	}
	for _, tc := range cases {
		got, err := sql.Parse(tc.url)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.url, err)
			continue
		}
		if got.Driver != tc.driver || !strings.HasPrefix(got.DSN, tc.dsn) {
			t.Errorf("Parse(%q) = %s %q, want %s %q...", tc.url, got.Driver, got.DSN, tc.driver, tc.dsn)
		}
	}
	// In memory is read from the parsed url, not from a substring.
	for url, mem := range map[string]bool{"sqlite::memory:": true, "sqlite:/tmp/x?mode=memory": true,
		"sqlite:/tmp/mode=memory.db": false, "sqlite:/tmp/:memory:x": false} {
		if m, err := sql.Parse(url); err != nil || m.Memory != mem {
			t.Errorf("Parse(%q): memory %v %v, want %v", url, m.Memory, err, mem)
		}
	}
	// Parameters are an allow-list: no vfs, no pragma that changes a
	// database for good.
	for _, bad := range []string{"sqlite:/tmp/x.db?vfs=unix-none", "sqlite:/tmp/x.db?_journal_mode=DELETE", "sqlite:/tmp/x.db?mode=rwx",
		"sqlite:/tmp/x.db?_auth_user=a", "mysql:root:pw@127.0.0.1:3306/db"} {
		if _, err := sql.Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"postgres://u:secretpw@127.0.0.1/db", "nope://x", "mysql://", "", "::::"} {
		_, err := sql.Parse(bad)
		var fe connector.FieldErrors
		if !errors.As(err, &fe) || fe[0].Field != "url" {
			t.Errorf("Parse(%q): %v, want a url field error", bad, err)
			continue
		}
		if strings.Contains(err.Error(), "secretpw") {
			t.Errorf("Parse error quotes the password: %v", err)
		}
	}
}

func newManager(t *testing.T) *connection.Manager {
	reg := &registry.Registry{}
	reg.Register(sql.Type, sql.Connector{})
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{
		Registry: reg, Logger: slog.New(slog.DiscardHandler), MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		HealthInterval: 50 * time.Millisecond, DialTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestSQLiteShared(t *testing.T) {
	ctx := context.Background()
	m := newManager(t)
	url := "sqlite:" + filepath.Join(t.TempDir(), "data.db")
	if _, err := m.Create(ctx, connection.Spec{ID: "db", Type: sql.Type, Props: map[string]any{"url": url, "maxOpenConns": 4}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for in, _ := m.Get("db"); in.State != connection.StateConnected; in, _ = m.Get("db") {
		if time.Now().After(deadline) {
			t.Fatalf("not connected: %+v", in.Status)
		}
		time.Sleep(2 * time.Millisecond)
	}
	w, err := sql.DB(m.Attach(ctx, "db", "rule1/sink"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := sql.DB(m.Attach(ctx, "db", "rule2/source"))
	if err != nil {
		t.Fatal(err)
	}
	if w != r {
		t.Fatal("two refs got two pools")
	}
	if _, err := w.ExecContext(ctx, `CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	var a int
	if err := r.GetContext(ctx, &a, `SELECT a FROM t`); err != nil || a != 42 {
		t.Fatalf("read back %d %v", a, err)
	}
	if _, err := sql.DB(m.Attach(ctx, "nope", "x")); !errors.Is(err, connection.ErrNotFound) {
		t.Errorf("DB of a missing connection: %v", err)
	}
	m.Detach("db", "rule1/sink")
	m.Detach("db", "rule2/source")
	if err := m.Delete(ctx, "db", connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	if err := w.PingContext(ctx); err == nil {
		t.Error("the pool still answers after Delete")
	}
}

func TestInvalidProps(t *testing.T) {
	m := newManager(t)
	_, err := m.Create(context.Background(), connection.Spec{ID: "db", Type: sql.Type,
		Props: map[string]any{"url": "postgres://u:topsecret@127.0.0.1/db", "maxIdleConns": -1}})
	var ce *connection.Error
	if !errors.As(err, &ce) || ce.Code != connection.CodeInvalidArgument {
		t.Fatalf("create: %v", err)
	}
	if strings.Contains(err.Error(), "topsecret") {
		t.Errorf("error quotes the password: %v", err)
	}
	if len(ce.Fields) != 1 || ce.Fields[0].Field != "url" || !strings.Contains(ce.Fields[0].Message, "not compiled in") {
		t.Errorf("fields %+v", ce.Fields)
	}
}
