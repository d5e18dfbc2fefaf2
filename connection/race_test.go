package connection_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
)

// TestDeleteRacesAttach: Delete and Attach on one connection at once,
// many times. Either the attach wins (the delete is refused, in_use) or
// the delete wins (the attach finds nothing); an attached ref never holds
// a closed conn, and a deleted connection never has refs.
func TestDeleteRacesAttach(t *testing.T) {
	e := newEnv(t, nil)
	attachWins, deleteWins := 0, 0
	for i := range 300 {
		if _, err := e.m.Create(ctx, spec("x", nil)); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		var wg sync.WaitGroup
		var client any
		var attachErr, deleteErr error
		wg.Add(2)
		go func() { defer wg.Done(); client, attachErr = e.m.Attach(ctx, "x", "rule/source") }()
		go func() { defer wg.Done(); deleteErr = e.m.Delete(ctx, "x", 0) }()
		wg.Wait()
		switch {
		case attachErr == nil && errors.Is(deleteErr, connection.ErrInUse):
			attachWins++
			if client.(*connectortest.FakeConn).Closed() {
				t.Fatalf("round %d: the attached ref holds a closed conn", i)
			}
			in, err := e.m.Get("x")
			if err != nil || in.RefCount != 1 {
				t.Fatalf("round %d: after the attach won: %+v %v", i, in, err)
			}
			e.m.Detach("x", "rule/source")
			if err := e.m.Delete(ctx, "x", 0); err != nil {
				t.Fatal(err)
			}
		case deleteErr == nil && errors.Is(attachErr, connection.ErrNotFound):
			deleteWins++
			if _, err := e.m.Get("x"); !errors.Is(err, connection.ErrNotFound) {
				t.Fatalf("round %d: deleted, yet Get says %v", i, err)
			}
		default:
			t.Fatalf("round %d: attach %v, delete %v", i, attachErr, deleteErr)
		}
	}
	t.Logf("attach won %d rounds, delete won %d", attachWins, deleteWins)
	if n := e.fake.OpenConns("p1"); n != 0 {
		t.Errorf("%d conns left open", n)
	}
}

// TestAttachRacesLastDetach: one rule detaches the last ref while another
// attaches. The count never goes below zero, the newcomer's conn is open,
// and once both settle the count is exactly the newcomer's one ref.
func TestAttachRacesLastDetach(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.m.Create(ctx, spec("x", nil)); err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		if _, err := e.m.Attach(ctx, "x", "old"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var client any
		var err error
		wg.Add(2)
		go func() { defer wg.Done(); e.m.Detach("x", "old"); e.m.Detach("x", "old") }()
		go func() { defer wg.Done(); client, err = e.m.Attach(ctx, "x", "new") }()
		wg.Wait()
		if err != nil {
			t.Fatalf("round %d: attach: %v", i, err)
		}
		if client.(*connectortest.FakeConn).Closed() {
			t.Fatalf("round %d: the new ref got a closed conn", i)
		}
		in, _ := e.m.Get("x")
		if in.RefCount != 1 || in.Refs[0] != "new" {
			t.Fatalf("round %d: refs %d %v, want just new", i, in.RefCount, in.Refs)
		}
		e.m.Detach("x", "new")
		if in, _ := e.m.Get("x"); in.RefCount != 0 {
			t.Fatalf("round %d: refCount %d after every detach", i, in.RefCount)
		}
	}
}
