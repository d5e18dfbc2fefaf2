package etcd_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/store"
	"github.com/connkit/connkit/store/etcd"
)

// lateTxn holds back the next transaction it is armed for, as a leader
// paused with the request in hand does: the caller's attempt times out,
// and the request is applied only when release is called, long after.
type lateTxn struct {
	mu    sync.Mutex
	armed bool
	held  chan func()
	// land, if set, makes the armed transaction reach etcd at once,
	// closing land, while its caller times out all the same: an answer
	// lost on the way back.
	land chan struct{}
}

func (l *lateTxn) arm() {
	l.mu.Lock()
	l.armed = true
	l.mu.Unlock()
}

func (l *lateTxn) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	l.mu.Lock()
	hold := l.armed && method == "/etcdserverpb.KV/Txn"
	if hold {
		l.armed = false
	}
	l.mu.Unlock()
	if !hold {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	if l.land != nil {
		if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
			return err
		}
		close(l.land)
		<-ctx.Done()
		return ctx.Err()
	}
	late := reflect.New(reflect.TypeOf(reply).Elem()).Interface()
	l.held <- func() {
		if err := invoker(context.Background(), method, req, late, cc, opts...); err != nil {
			panic(err)
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

// release applies the transaction held back, now.
func (l *lateTxn) release(t *testing.T) {
	t.Helper()
	select {
	case f := <-l.held:
		f()
	case <-time.After(5 * time.Second):
		t.Fatal("no transaction was held back")
	}
}

func openLate(t *testing.T, prefix string) (*etcd.Store, *lateTxn) {
	t.Helper()
	ep := connectortest.Env(t, "CONNKIT_ETCD_ENDPOINTS")
	l := &lateTxn{held: make(chan func(), 1)}
	s, err := etcd.Open(context.Background(), []string{ep}, &etcd.Options{Prefix: prefix, Instance: "late",
		Timeout: 2 * time.Second, DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(l.intercept)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, l
}

// TestLateAttemptChangesNothing: a write whose first attempt hangs is
// tried again and acknowledged; when the first attempt is applied at
// last, after other writes made its id look as it did (deleted and
// created again), it changes nothing. A guard of "absent" or "at version
// v" came true again, and undid an acknowledged write.
func TestLateAttemptChangesNothing(t *testing.T) {
	ctx := context.Background()
	rec := func(id, tag string) store.Record {
		return store.Record{ID: id, Type: "fake", Props: []byte(`{"w":"` + tag + `"}`)}
	}
	props := func(s store.Store, id string) string {
		r, err := s.Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return "absent"
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(r.Props)
	}

	t.Run("create", func(t *testing.T) {
		s, l := openLate(t, newPrefix(t))
		l.arm()
		r, err := s.Create(ctx, rec("k", "c1")) // acknowledged by its second attempt
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "k", r.Tag()); err != nil {
			t.Fatal(err)
		}
		l.release(t)
		if got := props(s, "k"); got != "absent" {
			t.Errorf("after an acknowledged delete, the create's first attempt applied late: %s", got)
		}
	})

	t.Run("delete", func(t *testing.T) {
		s, l := openLate(t, newPrefix(t))
		r, err := s.Create(ctx, rec("k", "c1"))
		if err != nil {
			t.Fatal(err)
		}
		l.arm()
		if err := s.Delete(ctx, "k", r.Tag()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, rec("k", "c2")); err != nil {
			t.Fatal(err)
		}
		l.release(t)
		if got := props(s, "k"); got != `{"w":"c2"}` {
			t.Errorf("the acknowledged re-create, after the delete's first attempt applied late: %s", got)
		}
	})

	t.Run("update", func(t *testing.T) {
		s, l := openLate(t, newPrefix(t))
		r, err := s.Create(ctx, rec("k", "c1"))
		if err != nil {
			t.Fatal(err)
		}
		l.arm()
		u, err := s.Update(ctx, rec("k", "u1"), r.Tag())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "k", u.Tag()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, rec("k", "c2")); err != nil {
			t.Fatal(err)
		}
		l.release(t)
		if got := props(s, "k"); got != `{"w":"c2"}` {
			t.Errorf("the acknowledged re-create, after the update's first attempt applied late: %s", got)
		}
	})

	t.Run("update twice", func(t *testing.T) {
		s, l := openLate(t, newPrefix(t))
		r, err := s.Create(ctx, rec("k", "c1"))
		if err != nil {
			t.Fatal(err)
		}
		l.arm()
		u, err := s.Update(ctx, rec("k", "u1"), r.Tag())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, rec("k", "u2"), u.Tag()); err != nil {
			t.Fatal(err)
		}
		l.release(t)
		if got := props(s, "k"); got != `{"w":"u2"}` {
			t.Errorf("the acknowledged second update, after the first's first attempt applied late: %s", got)
		}
	})
}

// TestRetryAppliesOnce: a create whose first attempt was applied but
// whose answer was lost is tried again; meanwhile another instance
// deleted the record. The retry sees that its write landed and answers
// it, rather than create the record a second time (its guard, the key
// absent and the tomb where it read it, held again).
func TestRetryAppliesOnce(t *testing.T) {
	ctx := context.Background()
	p := newPrefix(t)
	s, l := openLate(t, p)
	other := open(t, "other", p)
	defer other.Close()
	l.land = make(chan struct{})
	l.arm()
	done := make(chan error, 1)
	go func() {
		_, err := s.Create(ctx, store.Record{ID: "k", Type: "fake", Props: []byte(`{"w":"c1"}`)})
		done <- err
	}()
	<-l.land
	r, err := other.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Delete(ctx, "k", r.Tag()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the create whose first attempt landed: %v", err)
	}
	if r, err := other.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the create was applied twice: %s %v", r.Props, err)
	}
}
