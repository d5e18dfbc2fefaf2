package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connkit/connkit/store"
	"github.com/connkit/connkit/store/sqlite"
	"github.com/connkit/connkit/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "c.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), ":memory:")
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopenKeepsRecords(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "dir", "c.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, store.Record{ID: "a", Type: "t", Props: []byte(`{"password":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode %v, want 0600: it holds secrets", perm)
	}
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.Get(ctx, "a")
	if err != nil || r.Version != 1 || string(r.Props) != `{"password":"x"}` {
		t.Fatalf("after reopen: %+v, %v", r, err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := sqlite.Open(ctx, ""); err == nil {
		t.Error("Open of an empty path succeeded")
	}
	// A directory where the file should be.
	if _, err := sqlite.Open(ctx, t.TempDir()); err == nil {
		t.Error("Open of a directory succeeded")
	}
}

// TestFileInUse: a second opener of one database file fails at once,
// with an error that says so and points to the etcd store; after Close
// the file opens again.
func TestFileInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sqlite.Open(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), "etcd") {
		t.Fatalf("second Open of one file: %v, want an error that says it is in use and points to etcd", err)
	}
	// Through a symlink it is the same file.
	link := filepath.Join(t.TempDir(), "link.db")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.Open(context.Background(), link); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("Open through a symlink of a file in use: %v", err)
	}
	s.Close()
	s, err = sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s.Close()
}
