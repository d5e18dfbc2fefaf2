package sql_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/sql"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// TestSQLiteCheckChangesNothing: a check creates no file, whatever the
// url says, and changes no database.
func TestSQLiteCheckChangesNothing(t *testing.T) {
	dir := t.TempDir()
	wal := filepath.Join(dir, "wal.db")
	db := sqlx.MustOpen("sqlite3", "file:"+wal+"?_journal_mode=WAL")
	db.MustExec(`CREATE TABLE readings (t REAL)`)
	db.Close()
	reg := &registry.Registry{}
	reg.Register(sql.Type, sql.Connector{})
	c := check.New(&check.Options{Registry: reg, Timeout: 2 * time.Second})
	ctx := context.Background()
	for _, url := range []string{"sqlite:" + filepath.Join(dir, "new.db"), "sqlite:" + filepath.Join(dir, "mem") + "?mode=memory",
		"sqlite:" + filepath.Join(dir, "sub", "x.db"), "sqlite::memory:"} {
		c.Source(ctx, check.Request{Type: sql.Type, Props: map[string]any{"url": url, "table": "readings"}})
	}
	if _, err := c.Source(ctx, check.Request{Type: sql.Type, Props: map[string]any{"url": "sqlite:" + wal + "?_journal_mode=DELETE", "table": "readings"}}); !errors.Is(err, check.ErrInvalid) {
		t.Errorf("a check that would change the journal mode: %v, want ErrInvalid", err)
	}
	if _, err := c.Source(ctx, check.Request{Type: sql.Type, Props: map[string]any{"url": "sqlite:" + wal, "table": "readings"}}); err != nil {
		t.Errorf("a check of the existing database: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "wal.db" {
		t.Errorf("the checks left %v in the directory, want only wal.db", names)
	}
	var mode string
	db = sqlx.MustOpen("sqlite3", "file:"+wal+"?mode=ro")
	db.Get(&mode, `PRAGMA journal_mode`)
	db.Close()
	if mode != "wal" {
		t.Errorf("journal mode %q after the checks, want wal", mode)
	}
}

// TestSQLiteConfined: with a file policy, a connection's SQLite files lie
// under its root, a link cannot lead out of it, and the store's own file
// is never a connection's; checks are held to it too.
func TestSQLiteConfined(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	storeFile := filepath.Join(root, "connkit.db")
	os.WriteFile(storeFile, nil, 0o600)
	if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(storeFile, filepath.Join(root, "hard.db")); err != nil {
		t.Fatal(err)
	}
	policy := &connector.Policy{Files: &connector.FilePolicy{Root: root, Deny: []string{storeFile}}}
	reg := &registry.Registry{}
	reg.Register(sql.Type, sql.Connector{})
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg, Policy: policy, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	for name, url := range map[string]string{
		"outside":        "sqlite:" + filepath.Join(outside, "x.db"),
		"dot-dot":        "sqlite:" + root + "/../x.db",
		"through a link": "sqlite:" + filepath.Join(root, "out", "x.db"),
		"the store":      "sqlite:" + storeFile,
		"its WAL":        "sqlite:" + storeFile + "-wal",
		"a hard link":    "sqlite:" + filepath.Join(root, "hard.db"),
	} {
		_, err := m.Create(ctx, connection.Spec{ID: "db", Type: sql.Type, Props: map[string]any{"url": url}})
		var ce *connection.Error
		if !errors.As(err, &ce) || ce.Code != connection.CodeInvalidArgument || len(ce.Fields) == 0 || ce.Fields[0].Field != "url" {
			t.Errorf("%s: %v, want invalid_argument naming url", name, err)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("files were made outside the root: %v", ents)
	}
	if _, err := m.Create(ctx, connection.Spec{ID: "db", Type: sql.Type, Props: map[string]any{"url": "sqlite:" + filepath.Join(root, "data", "..", "ok.db")}}); err != nil {
		t.Fatalf("a database under the root: %v", err)
	}
	connectortest.WaitState(t, m, "db", connection.StateConnected, 5*time.Second)
	c := check.New(&check.Options{Registry: reg, Policy: policy})
	if _, err := c.Source(ctx, check.Request{Type: sql.Type, Props: map[string]any{"url": "sqlite:" + filepath.Join(outside, "x.db")}}); !errors.Is(err, check.ErrInvalid) {
		t.Errorf("a check outside the root: %v, want ErrInvalid", err)
	}
	if _, err := c.Source(ctx, check.Request{Type: sql.Type, Props: map[string]any{"url": "sqlite:" + filepath.Join(root, "ok.db")}}); err != nil {
		t.Errorf("a check of the database under the root: %v", err)
	}
}
