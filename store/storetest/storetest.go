// Package storetest is the conformance suite for store.Store
// implementations. A store package runs it from a short test:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return New() })
//	}
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/connkit/connkit/store"
)

// Harness returns a new, empty store for one subtest. Run closes it.
type Harness func(t *testing.T) store.Store

// Run runs every conformance test against stores made by h.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateGet", testCreateGet},
		{"CreateExists", testCreateExists},
		{"GetMissing", testGetMissing},
		{"ListSorted", testListSorted},
		{"Update", testUpdate},
		{"UpdateMismatch", testUpdateMismatch},
		{"Delete", testDelete},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"CanceledContext", testCanceled},
		{"Watch", testWatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := h(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

func rec(id string, props string) store.Record {
	return store.Record{ID: id, Type: "fake", Props: json.RawMessage(props)}
}

// same compares records, with timestamps to the microsecond: a store may
// keep no finer time.
var same = cmp.Options{
	cmp.Comparer(func(a, b time.Time) bool { return a.Truncate(time.Microsecond).Equal(b.Truncate(time.Microsecond)) }),
	cmp.Comparer(func(a, b json.RawMessage) bool { return string(a) == string(b) }),
}

func testCreateGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	got, err := s.Create(ctx, rec("Conn-1", `{"server":"tcp://127.0.0.1:1883"}`))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if got.Version != 1 {
		t.Errorf("Create: version %d, want 1", got.Version)
	}
	if got.CreatedAt.Before(before) || !got.CreatedAt.Equal(got.UpdatedAt) {
		t.Errorf("Create: timestamps created=%v updated=%v, want now and equal", got.CreatedAt, got.UpdatedAt)
	}
	read, err := s.Get(ctx, "Conn-1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if diff := cmp.Diff(got, read, same); diff != "" {
		t.Errorf("Get differs from Create (-create +get):\n%s", diff)
	}
	if _, err := s.Get(ctx, "conn-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of the id in other case: %v, want ErrNotFound (ids keep their case)", err)
	}
}

func testCreateExists(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.Create(ctx, rec("a", `{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, rec("a", `{"v":2}`)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	got, err := s.Get(ctx, "a")
	if err != nil || string(got.Props) != `{"v":1}` {
		t.Fatalf("after a refused Create: %s, %v; want the first props kept", got.Props, err)
	}
}

func testGetMissing(t *testing.T, s store.Store) {
	if _, err := s.Get(context.Background(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get: %v, want ErrNotFound", err)
	}
}

func testListSorted(t *testing.T, s store.Store) {
	ctx := context.Background()
	l, err := s.List(ctx)
	if err != nil || len(l) != 0 {
		t.Fatalf("List of an empty store: %v, %v", l, err)
	}
	for _, id := range []string{"b", "A", "c", "a", "b-1"} {
		if _, err := s.Create(ctx, rec(id, `{}`)); err != nil {
			t.Fatal(err)
		}
	}
	l, err = s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range l {
		ids = append(ids, r.ID)
	}
	if diff := cmp.Diff([]string{"A", "a", "b", "b-1", "c"}, ids); diff != "" {
		t.Errorf("List order (-want +got):\n%s", diff)
	}
}

func testUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	c, err := s.Create(ctx, rec("a", `{"v":1}`))
	if err != nil {
		t.Fatal(err)
	}
	next := rec("a", `{"v":2}`)
	next.Type = "other"
	u, err := s.Update(ctx, next, c.Tag())
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if u.Version != 2 || u.Incarnation != c.Incarnation || u.Type != "other" || string(u.Props) != `{"v":2}` {
		t.Errorf("Update returned %+v", u)
	}
	if !u.CreatedAt.Truncate(time.Microsecond).Equal(c.CreatedAt.Truncate(time.Microsecond)) || u.UpdatedAt.Before(c.UpdatedAt) {
		t.Errorf("Update timestamps: created %v -> %v, updated %v -> %v", c.CreatedAt, u.CreatedAt, c.UpdatedAt, u.UpdatedAt)
	}
	g, err := s.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(u, g, same); diff != "" {
		t.Errorf("Get after Update (-update +get):\n%s", diff)
	}
	if _, err := s.Update(ctx, rec("missing", `{}`), c.Tag()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update of a missing id: %v, want ErrNotFound", err)
	}
}

func testUpdateMismatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	c, err := s.Create(ctx, rec("a", `{"v":1}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []store.Tag{{Incarnation: c.Incarnation, Version: 2}, {Incarnation: c.Incarnation, Version: -1},
		{Incarnation: c.Incarnation + 1, Version: 1}, {Incarnation: c.Incarnation - 1, Version: 1}} {
		if _, err := s.Update(ctx, rec("a", `{"v":9}`), at); !errors.Is(err, store.ErrVersionMismatch) {
			t.Errorf("Update at %+v: %v, want ErrVersionMismatch", at, err)
		}
		if err := s.Delete(ctx, "a", at); !errors.Is(err, store.ErrVersionMismatch) {
			t.Errorf("Delete at %+v: %v, want ErrVersionMismatch", at, err)
		}
	}
	g, err := s.Get(ctx, "a")
	if err != nil || g.Version != 1 || string(g.Props) != `{"v":1}` {
		t.Errorf("after refused writes: %+v, %v; want version 1 unchanged", g, err)
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	first, err := s.Create(ctx, rec("a", `{}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "a", first.Tag()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "a", first.Tag()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	// The id is free again, and starts over at version 1, in another
	// incarnation: no tag of the first names it.
	c, err := s.Create(ctx, rec("a", `{}`))
	if err != nil || c.Version != 1 {
		t.Fatalf("Create after Delete: %+v, %v", c, err)
	}
	if c.Incarnation == first.Incarnation || c.Tag() == first.Tag() {
		t.Errorf("the id's second record has the first one's incarnation %d", c.Incarnation)
	}
	if g, _ := s.Get(ctx, "a"); g.Incarnation != c.Incarnation {
		t.Errorf("Get: incarnation %d, Create said %d", g.Incarnation, c.Incarnation)
	}
	if _, err := s.Update(ctx, rec("a", `{"v":1}`), first.Tag()); !errors.Is(err, store.ErrVersionMismatch) {
		t.Errorf("Update with the deleted record's tag: %v, want ErrVersionMismatch", err)
	}
	if err := s.Delete(ctx, "a", first.Tag()); !errors.Is(err, store.ErrVersionMismatch) {
		t.Errorf("Delete with the deleted record's tag: %v, want ErrVersionMismatch", err)
	}
	if g, err := s.Get(ctx, "a"); err != nil || g.Version != 1 {
		t.Errorf("after writes with a stale tag: %+v, %v", g, err)
	}
}

// testConcurrentUpdates races updates that all expect version 1: exactly
// one may win.
func testConcurrentUpdates(t *testing.T, s store.Store) {
	ctx := context.Background()
	c, err := s.Create(ctx, rec("a", `{}`))
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Update(ctx, rec("a", fmt.Sprintf(`{"v":%d}`, i)), c.Tag())
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrVersionMismatch):
			t.Errorf("losing Update: %v, want ErrVersionMismatch", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d updates of version 1 succeeded, want exactly 1", wins)
	}
	if g, _ := s.Get(ctx, "a"); g.Version != 2 {
		t.Errorf("version after the race: %d, want 2", g.Version)
	}
}

func testCanceled(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Create(ctx, rec("a", `{}`)); err == nil {
		t.Errorf("Create with a canceled context succeeded")
	}
	if _, err := s.Get(context.Background(), "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after a canceled Create: %v, want ErrNotFound", err)
	}
}

// testWatch: a store.Watcher reports what is stored, then every write in
// order, with growing revisions; a deleted record comes with the version
// it had.
func testWatch(t *testing.T, s store.Store) {
	w, ok := s.(store.Watcher)
	if !ok {
		t.Skip("not a store.Watcher")
	}
	ctx := context.Background()
	if _, err := s.Create(ctx, rec("before", `{}`)); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	synced := make(chan []store.Record, 1)
	changes := make(chan store.Change, 16)
	done := make(chan error, 1)
	go func() {
		done <- w.Watch(wctx, func(recs []store.Record, rev int64) { synced <- recs }, func(c store.Change) { changes <- c }, nil)
	}()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v after its context ended, want context.Canceled", err)
		}
	}()
	select {
	case recs := <-synced:
		if len(recs) != 1 || recs[0].ID != "before" {
			t.Fatalf("first sync: %+v, want the record made before", recs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no sync within 10 s")
	}
	a, err := s.Create(ctx, rec("a", `{"v":1}`))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := s.Update(ctx, rec("a", `{"v":2}`), a.Tag())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "a", a2.Tag()); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		deleted bool
		version int64
	}{{false, 1}, {false, 2}, {true, 2}}
	var last int64
	for i, w := range want {
		select {
		case c := <-changes:
			if c.Record.ID != "a" || c.Deleted != w.deleted || c.Record.Version != w.version {
				t.Fatalf("change %d: %+v, want a, deleted %v, version %d", i, c, w.deleted, w.version)
			}
			if !w.deleted && c.Record.Revision <= last {
				t.Errorf("change %d: revision %d after %d", i, c.Record.Revision, last)
			}
			last = c.Record.Revision
		case <-time.After(10 * time.Second):
			t.Fatalf("change %d not seen within 10 s", i)
		}
	}
	if a.Revision == 0 || a2.Revision <= a.Revision {
		t.Errorf("revisions of Create and Update: %d, %d; want growing, not 0", a.Revision, a2.Revision)
	}
}
