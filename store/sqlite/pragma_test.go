package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

// TestDurabilityPragmas: the open database runs in WAL mode with
// synchronous=FULL. A killed process cannot tell FULL from OFF (the page
// cache survives it), so the promise of durability is checked here, on
// the connection itself.
func TestDurabilityPragmas(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var journal string
	var sync, busy int
	if err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&journal); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil {
		t.Fatal(err)
	}
	if journal != "wal" || sync != 2 || busy != 5000 {
		t.Errorf("journal_mode %q, synchronous %d, busy_timeout %d; want wal, 2 (FULL), 5000", journal, sync, busy)
	}
}
