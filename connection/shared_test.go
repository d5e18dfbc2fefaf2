package connection_test

import (
	"testing"

	"github.com/connkit/connkit/connection"
)

// TestSharedStoreConverges: two Managers on one shared store (memory is a
// store.Watcher) follow each other: a create on one is connected on the
// other, an update redials there, a delete closes it there; a Manager's
// own writes come back through the watch without a redial.
func TestSharedStoreConverges(t *testing.T) {
	e := newEnv(t, nil)
	b := e.open(t)
	e.fake.SetUp("p", true)
	e.fake.SetUp("q", true)

	in, err := e.m.Create(ctx, spec("c1", map[string]any{"addr": "p"}))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, b, "c1", connection.StateConnected)
	waitState(t, e.m, "c1", connection.StateConnected)
	if n := e.fake.Dials("p"); n != 2 {
		t.Errorf("%d dials of p after one create seen by two Managers, want 2 (one each, no redial of the echo)", n)
	}

	if _, err := e.m.Update(ctx, spec("c1", map[string]any{"addr": "q"}), in.Tag()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the update on b", func() bool {
		got, err := b.Get("c1")
		return err == nil && got.Version == 2 && got.Props["addr"] == "q" && got.State == connection.StateConnected
	})
	waitFor(t, "b's old link closed", func() bool { return e.fake.OpenConns("p") == 0 })

	// A write on b comes back to a.
	if err := b.Delete(ctx, "c1", connection.Tag{Incarnation: in.Incarnation, Version: 2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delete on a", func() bool { _, err := e.m.Get("c1"); return err != nil })
	waitFor(t, "every link closed", func() bool { return e.fake.OpenConns("q") == 0 })

	// Recreated at once with the same id: the delete's echo must not take
	// the new one.
	if _, err := e.m.Create(ctx, spec("c1", map[string]any{"addr": "p"})); err != nil {
		t.Fatal(err)
	}
	waitState(t, b, "c1", connection.StateConnected)
	if _, err := e.m.Get("c1"); err != nil {
		t.Fatalf("the recreated connection is gone on its own Manager: %v", err)
	}
}

// TestSharedStoreOneWinner: an id created on both Managers at once
// is won by one; the loser's Manager ends with the winner's connection.
func TestSharedStoreOneWinner(t *testing.T) {
	e := newEnv(t, nil)
	b := e.open(t)
	e.fake.SetUp("p", true)
	e.fake.SetUp("q", true)
	errA := make(chan error, 1)
	go func() { _, err := e.m.Create(ctx, spec("x", map[string]any{"addr": "p"})); errA <- err }()
	_, errB := b.Create(ctx, spec("x", map[string]any{"addr": "q"}))
	if (<-errA == nil) == (errB == nil) {
		t.Fatalf("both or neither of two creates of one id won (b: %v)", errB)
	}
	want := "p"
	if errB == nil {
		want = "q"
	}
	for _, m := range []*connection.Manager{e.m, b} {
		waitFor(t, "the winner on both", func() bool {
			in, err := m.Get("x")
			return err == nil && in.Props["addr"] == want
		})
	}
}
