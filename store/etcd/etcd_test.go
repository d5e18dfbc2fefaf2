package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/store"
	"github.com/connkit/connkit/store/etcd"
	"github.com/connkit/connkit/store/storetest"
)

var prefixes atomic.Int64

// open returns a Store on the test etcd under a prefix of its own.
func open(t testing.TB, instance string, prefix string) *etcd.Store {
	t.Helper()
	ep := connectortest.Env(t, "CONNKIT_ETCD_ENDPOINTS")
	s, err := etcd.Open(context.Background(), []string{ep}, &etcd.Options{Prefix: prefix, Instance: instance})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newPrefix(t *testing.T) string {
	return fmt.Sprintf("/connkit-test/%d-%d/", time.Now().UnixNano(), prefixes.Add(1))
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, "i1", newPrefix(t)) })
}

// TestRefsAcrossInstances: a ref held by one instance refuses the update
// and delete of another, naming instance and ref, until it is released.
func TestRefsAcrossInstances(t *testing.T) {
	ctx := context.Background()
	p := newPrefix(t)
	a, b := open(t, "a", p), open(t, "b", p)
	defer a.Close()
	defer b.Close()
	r, err := a.Create(ctx, store.Record{ID: "c1", Type: "fake", Props: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.HoldRef(ctx, "c1", "rule/1 sink"); err != nil {
		t.Fatal(err)
	}
	if err := b.HoldRef(ctx, "c1", "rule/1 sink"); err != nil { // a second attach of the name
		t.Fatal(err)
	}
	var iu *store.InUseError
	if err := a.Delete(ctx, "c1", r.Tag()); !errors.As(err, &iu) || len(iu.Refs) != 1 || iu.Refs[0] != (store.Ref{Instance: "b", Name: "rule/1 sink"}) {
		t.Fatalf("Delete while b holds a ref: %v (%+v), want in use by b's ref", err, iu)
	}
	if _, err := a.Update(ctx, store.Record{ID: "c1", Type: "fake", Props: []byte(`{"x":1}`)}, r.Tag()); !errors.Is(err, store.ErrInUse) {
		t.Fatalf("Update while b holds a ref: %v, want ErrInUse", err)
	}
	b.ReleaseRef(ctx, "c1", "rule/1 sink")
	if err := a.Delete(ctx, "c1", r.Tag()); !errors.Is(err, store.ErrInUse) {
		t.Fatalf("Delete with one of two attaches released: %v, want ErrInUse", err)
	}
	b.ReleaseRef(ctx, "c1", "rule/1 sink")
	if err := a.Delete(ctx, "c1", r.Tag()); err != nil {
		t.Fatalf("Delete after the last release: %v", err)
	}
	if err := b.HoldRef(ctx, "c1", "late"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("HoldRef of a deleted record: %v, want ErrNotFound", err)
	}
}

// TestHoldRacesDelete: an attach on one instance racing a delete on
// another: exactly one wins, never both.
func TestHoldRacesDelete(t *testing.T) {
	ctx := context.Background()
	p := newPrefix(t)
	a, b := open(t, "a", p), open(t, "b", p)
	defer a.Close()
	defer b.Close()
	for i := range 50 {
		id := fmt.Sprintf("c%d", i)
		c, err := a.Create(ctx, store.Record{ID: id, Type: "fake", Props: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		var hold, del error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); hold = b.HoldRef(ctx, id, "r") }()
		go func() { defer wg.Done(); del = a.Delete(ctx, id, c.Tag()) }()
		wg.Wait()
		if (hold == nil) == (del == nil) {
			t.Fatalf("round %d: hold %v, delete %v: want exactly one to succeed", i, hold, del)
		}
		if hold == nil && !errors.Is(del, store.ErrInUse) || del == nil && !errors.Is(hold, store.ErrNotFound) {
			t.Fatalf("round %d: hold %v, delete %v", i, hold, del)
		}
		if hold == nil {
			b.ReleaseRef(ctx, id, "r")
		}
	}
}

// TestCrashedInstanceRefsExpire: the refs of an instance that stops
// without closing go with its lease.
func TestCrashedInstanceRefsExpire(t *testing.T) {
	ctx := context.Background()
	p := newPrefix(t)
	ep := connectortest.Env(t, "CONNKIT_ETCD_ENDPOINTS")
	a := open(t, "a", p)
	defer a.Close()
	b, err := etcd.Open(ctx, []string{ep}, &etcd.Options{Prefix: p, Instance: "b", RefTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c1, err := a.Create(ctx, store.Record{ID: "c1", Type: "fake", Props: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.HoldRef(ctx, "c1", "r"); err != nil {
		t.Fatal(err)
	}
	b.Crash()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := a.Delete(ctx, "c1", c1.Tag())
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrInUse) || time.Now().After(deadline) {
			t.Fatalf("Delete after b crashed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSameInstanceName: two processes given one instance name (a
// mistake) do not withdraw each other's refs.
func TestSameInstanceName(t *testing.T) {
	p := newPrefix(t)
	s1, s2, s3 := open(t, "dup", p), open(t, "dup", p), open(t, "other", p)
	defer s1.Close()
	defer s2.Close()
	defer s3.Close()
	ctx := context.Background()
	x, err := s3.Create(ctx, store.Record{ID: "x", Type: "fake", Props: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*etcd.Store{s1, s2} {
		if err := s.HoldRef(ctx, "x", "rule1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s2.ReleaseRef(ctx, "x", "rule1"); err != nil {
		t.Fatal(err)
	}
	if err := s3.Delete(ctx, "x", x.Tag()); !errors.Is(err, store.ErrInUse) {
		t.Fatalf("delete while the first dup still holds rule1: %v, want in_use", err)
	}
	s1.ReleaseRef(ctx, "x", "rule1")
	if err := s3.Delete(ctx, "x", x.Tag()); err != nil {
		t.Fatalf("delete once both released: %v", err)
	}
}
