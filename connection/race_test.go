package connection_test

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
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
		go func() { defer wg.Done(); deleteErr = e.m.Delete(ctx, "x", connection.Tag{}) }()
		wg.Wait()
		switch {
		case attachErr == nil && errors.Is(deleteErr, connection.ErrInUse):
			attachWins++
			if client.(*connectortest.FakeClient).Conn().Closed() {
				t.Fatalf("round %d: the attached ref holds a closed conn", i)
			}
			in, err := e.m.Get("x")
			if err != nil || in.RefCount != 1 {
				t.Fatalf("round %d: after the attach won: %+v %v", i, in, err)
			}
			e.m.Detach("x", "rule/source")
			if err := e.m.Delete(ctx, "x", connection.Tag{}); err != nil {
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
		if client.(*connectortest.FakeClient).Conn().Closed() {
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

// TestSameRefRacesWrites: several users attach and detach under one ref
// name (a rule restarting while its old instance stops) while others
// delete, recreate and update the connection. Half of them use
// Attach/Detach, half Hold/Close. No delete or update may succeed while
// any of them is attached, and a Handle's client is never detached or
// closed under its user.
func TestSameRefRacesWrites(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.m.Create(ctx, spec("c", nil)); err != nil {
		t.Fatal(err)
	}
	// Each holder goes on until it has held the connection `rounds` times
	// (an attach that finds it deleted does not count).
	const holders, rounds = 4, 1000
	deadline := time.Now().Add(time.Minute)
	var inside atomic.Int64 // users between their attach and their detach
	var violations, held atomic.Int64
	var holding, writing sync.WaitGroup
	for w := range holders {
		holding.Add(1)
		go func() {
			defer holding.Done()
			for mine := 0; mine < rounds && time.Now().Before(deadline); {
				var c any
				release := func() { e.m.Detach("c", "rule/source") }
				if w%2 == 0 {
					h, err := e.m.Hold(ctx, "c", "rule/source")
					if err != nil {
						continue // deleted meanwhile
					}
					c, release = h.Client(), func() { h.Close() }
				} else {
					var err error
					if c, err = e.m.Attach(ctx, "c", "rule/source"); err != nil {
						continue
					}
				}
				inside.Add(1)
				held.Add(1)
				mine++
				if err := e.m.Delete(ctx, "c", connection.Tag{}); !errors.Is(err, connection.ErrInUse) {
					violations.Add(1)
					t.Errorf("Delete while attached: %v", err)
				}
				if _, err := e.m.Update(ctx, spec("c", map[string]any{"addr": "p1", "retries": 5}), connection.Tag{}); !errors.Is(err, connection.ErrInUse) {
					violations.Add(1)
					t.Errorf("Update while attached: %v", err)
				}
				// Attaches of one name through Attach are interchangeable:
				// Detach releases the oldest. A Handle's is its own.
				cl := c.(*connectortest.FakeClient)
				if err := cl.Use(); cl.Conn().Closed() || (w%2 == 0 && errors.Is(err, connector.ErrDetached)) {
					violations.Add(1)
					t.Errorf("a held client was detached or closed: %v", err)
				}
				inside.Add(-1)
				release()
				runtime.Gosched() // let the writers in between holders
			}
		}()
	}
	stop := make(chan struct{})
	var deletes, updates atomic.Int64
	writing.Add(2)
	go func() {
		defer writing.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := e.m.Delete(ctx, "c", connection.Tag{}); err == nil {
				deletes.Add(1)
				// Only this goroutine creates "c", so no one attached
				// since the delete: a user inside held it across.
				if n := inside.Load(); n > 0 {
					violations.Add(1)
					t.Errorf("a delete succeeded while %d users were attached", n)
				}
				e.m.Create(ctx, spec("c", nil))
			}
		}
	}()
	go func() {
		defer writing.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.m.Update(ctx, spec("c", map[string]any{"addr": "p1"}), connection.Tag{}); err == nil {
				updates.Add(1)
			}
		}
	}()
	holding.Wait()
	close(stop)
	writing.Wait()
	if v := violations.Load(); v != 0 {
		t.Fatalf("%d violations", v)
	}
	if held.Load() < holders*rounds || deletes.Load() == 0 {
		t.Fatalf("%d attaches held, %d deletes: the race proved nothing", held.Load(), deletes.Load())
	}
	t.Logf("%d attaches held, %d deletes and %d updates between them", held.Load(), deletes.Load(), updates.Load())
}

// TestReleaseOnce: an attach by Attach and one by Hold under one name,
// released by two racing Detaches and two racing Closes of the Handle:
// each client is ended once, and the connector's Release runs once, after
// the last.
func TestReleaseOnce(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.m.Create(ctx, spec("c", nil)); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		c, err := e.m.Attach(ctx, "c", "r")
		if err != nil {
			t.Fatal(err)
		}
		h, err := e.m.Hold(ctx, "c", "r")
		if err != nil {
			t.Fatal(err)
		}
		fc := c.(*connectortest.FakeClient).Conn()
		var wg sync.WaitGroup
		wg.Add(4)
		go func() { defer wg.Done(); e.m.Detach("c", "r") }()
		go func() { defer wg.Done(); e.m.Detach("c", "r") }()
		go func() { defer wg.Done(); h.Close() }()
		go func() { defer wg.Done(); h.Close() }()
		wg.Wait()
		// The Fake panics on a client ended twice.
		if n := len(fc.Released()); n != i+1 {
			t.Fatalf("round %d: Release ran %d times in all, want %d", i, n, i+1)
		}
		if in, _ := e.m.Get("c"); in.RefCount != 0 || len(in.Refs) != 0 {
			t.Fatalf("round %d: refs left: %+v", i, in)
		}
		if c.(*connectortest.FakeClient).Use() == nil || h.Client().(*connectortest.FakeClient).Use() == nil {
			t.Fatalf("round %d: a released client still works", i)
		}
	}
}

// TestAttachIfRacesUpdate: a typed attach that refuses the client races
// updates of the connection; under -race nothing is read unguarded, and
// the refused attach leaves no ref.
func TestAttachIfRacesUpdate(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.m.Create(ctx, spec("c", nil)); err != nil {
		t.Fatal(err)
	}
	refuse := func(any) error { return errors.New("not of the wanted type") }
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 300 {
			e.m.Update(ctx, spec("c", map[string]any{"addr": "p1", "retries": i}), connection.Tag{})
		}
	}()
	for range 300 {
		if _, err := e.m.AttachIf(ctx, "c", "r", refuse); !errors.Is(err, connection.ErrInvalidArgument) {
			t.Fatalf("a refused attach: %v", err)
		}
	}
	<-done
	if in, _ := e.m.Get("c"); in.RefCount != 0 {
		t.Errorf("refused attaches left refs %v", in.Refs)
	}
}
