package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/connkit/connkit/store"
)

// TestGroupCommit: concurrent writes are committed together, far fewer
// transactions than writes; a write that fails (an id taken, a stale
// version) fails alone, and every write answered ok is stored.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Create(ctx, store.Record{ID: "taken", Type: "x", Props: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	before := s.batches.Load()
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch {
			case i == 5: // fails in SQLite itself: props may not be NULL
				_, errs[i] = s.Create(ctx, store.Record{ID: "bad", Type: "x", Props: nil})
			case i%10 == 0:
				_, errs[i] = s.Create(ctx, store.Record{ID: "taken", Type: "x", Props: []byte(`{}`)})
			case i%10 == 1:
				_, errs[i] = s.Update(ctx, store.Record{ID: "taken", Type: "x", Props: []byte(`{}`)}, store.Tag{Version: 99})
			default:
				_, errs[i] = s.Create(ctx, store.Record{ID: fmt.Sprintf("c%d", i), Type: "x", Props: []byte(`{}`)})
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case i%10 == 0 && !errors.Is(err, store.ErrExists):
			t.Errorf("create of a taken id: %v", err)
		case i%10 == 1 && !errors.Is(err, store.ErrVersionMismatch):
			t.Errorf("stale update: %v", err)
		case i == 5:
			if err == nil || errors.Is(err, store.ErrExists) {
				t.Errorf("a create that SQLite refuses: %v", err)
			}
		case i%10 > 1 && err != nil:
			t.Errorf("create c%d: %v", i, err)
		}
	}
	recs, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n-2*n/10 {
		t.Errorf("%d records stored, want %d: every write answered ok, none other", len(recs), n-2*n/10)
	}
	if b := s.batches.Load() - before; b >= n {
		t.Errorf("%d transactions for %d concurrent writes: nothing was grouped", b, n)
	} else {
		t.Logf("%d writes in %d transactions", n, b)
	}
	// A write whose context ended before its turn never happens.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Create(cctx, store.Record{ID: "late", Type: "x", Props: []byte(`{}`)}); !errors.Is(err, context.Canceled) {
		t.Errorf("create with a cancelled context: %v", err)
	}
	if _, err := s.Get(ctx, "late"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the cancelled create was stored: %v", err)
	}
}
