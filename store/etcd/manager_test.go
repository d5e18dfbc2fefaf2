package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/etcd"
	"github.com/connkit/connkit/store/etcd/etcdtest"
)

func manager(t testing.TB, fake *connectortest.Fake, eps []string, prefix, instance string) (*connection.Manager, *etcd.Store) {
	t.Helper()
	return managerTTL(t, fake, eps, prefix, instance, 0)
}

// managerTTL is manager with the refs' time-to-live (0: the default).
func managerTTL(t testing.TB, fake *connectortest.Fake, eps []string, prefix, instance string, ttl time.Duration) (*connection.Manager, *etcd.Store) {
	t.Helper()
	s, err := etcd.Open(context.Background(), eps, &etcd.Options{Prefix: prefix, Instance: instance, Timeout: 2 * time.Second, RefTTL: ttl,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	reg := &registry.Registry{}
	reg.Register("fake", fake)
	m, err := connection.New(context.Background(), s, &connection.Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func state(m *connection.Manager, id string) connection.State {
	in, err := m.Get(id)
	if err != nil {
		return ""
	}
	return in.State
}

// TestManagersShareConnections: two Managers on one etcd follow each
// other within a second, and a ref held on one refuses the other's
// update and delete, naming the instance and the ref.
func TestManagersShareConnections(t *testing.T) {
	ep := connectortest.Env(t, "CONNKIT_ETCD_ENDPOINTS")
	fake := connectortest.NewFake()
	fake.SetUp("p", true)
	fake.SetUp("q", true)
	p := newPrefix(t)
	a, _ := manager(t, fake, []string{ep}, p, "a")
	b, _ := manager(t, fake, []string{ep}, p, "b")
	ctx := context.Background()

	if _, err := a.Create(ctx, connection.Spec{ID: "c1", Type: "fake", Props: map[string]any{"addr": "p", "password": "pw"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "c1 connected on b", time.Second, func() bool { return state(b, "c1") == connection.StateConnected })

	if _, err := b.Attach(ctx, "c1", "rule-7/sink"); err != nil {
		t.Fatal(err)
	}
	err := a.Delete(ctx, "c1", connection.Tag{})
	var ce *connection.Error
	if !errors.As(err, &ce) || ce.Code != connection.CodeInUse || len(ce.Refs) != 1 || ce.Refs[0] != "b: rule-7/sink" {
		t.Fatalf("delete on a while b holds a ref: %v, want in_use naming b: rule-7/sink", err)
	}
	if _, err := a.Update(ctx, connection.Spec{ID: "c1", Type: "fake", Props: map[string]any{"addr": "q"}}, connection.Tag{}); !errors.As(err, &ce) || ce.Code != connection.CodeInUse {
		t.Fatalf("update on a while b holds a ref: %v, want in_use", err)
	}
	b.Detach("c1", "rule-7/sink")
	in, err := a.Update(ctx, connection.Spec{ID: "c1", Type: "fake", Props: map[string]any{"addr": "q", "password": "pw2"}}, connection.Tag{})
	if err != nil {
		t.Fatalf("update after the detach: %v", err)
	}
	eventually(t, "the update on b", time.Second, func() bool {
		got, err := b.Get("c1")
		return err == nil && got.Version == in.Version && got.Props["addr"] == "q" && got.State == connection.StateConnected
	})
	if err := b.Delete(ctx, "c1", connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the delete on a", time.Second, func() bool { _, err := a.Get("c1"); return err != nil })
	eventually(t, "every link closed", time.Second, func() bool { return fake.OpenConns("p")+fake.OpenConns("q") == 0 })
}

// TestEtcdOutage: with etcd down, writes fail within a few seconds as
// unavailable, reads are served, and when it is back the Manager catches
// up with what another instance wrote meanwhile and nothing acknowledged
// is lost.
func TestEtcdOutage(t *testing.T) {
	ms := etcdtest.Cluster(t, 1)
	fake := connectortest.NewFake()
	fake.SetUp("p", true)
	eps := etcdtest.Endpoints(ms)
	a, _ := manager(t, fake, eps, "/outage/", "a")
	ctx := context.Background()
	if _, err := a.Create(ctx, connection.Spec{ID: "kept", Type: "fake", Props: map[string]any{"addr": "p"}}); err != nil {
		t.Fatal(err)
	}
	ms[0].Stop()
	// Three writes of one id at once wait for each other, and each
	// answers within the write timeout all the same (they queued, and
	// answered at 5, 10 and 15 s).
	start := time.Now()
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := a.Create(ctx, connection.Spec{ID: "during", Type: "fake", Props: map[string]any{"addr": "p"}})
			errs <- err
		}()
	}
	for range 3 {
		err := <-errs
		var ce *connection.Error
		if !errors.As(err, &ce) || ce.Code != connection.CodeUnavailable {
			t.Fatalf("create with etcd down: %v, want unavailable", err)
		}
	}
	if d := time.Since(start); d > connection.DefaultWriteTimeout+time.Second {
		t.Errorf("three creates with etcd down answered after %v, want each within the write timeout (%v)", d, connection.DefaultWriteTimeout)
	}
	if in, err := a.Get("kept"); err != nil || in.State != connection.StateConnected {
		t.Errorf("read with etcd down: %+v %v", in, err)
	}
	ms[0].Start()
	ms[0].WaitHealthy(30 * time.Second)
	// The store dials again soon (gRPC's backoff alone took 7 s).
	healthy := time.Now()
	for {
		_, err := a.Create(ctx, connection.Spec{ID: "back", Type: "fake", Props: map[string]any{"addr": "p"}})
		if err == nil {
			break
		}
		if time.Since(healthy) > 3*time.Second {
			t.Fatalf("no write succeeded within 3 s of etcd's return: %v", err)
		}
	}
	// Another instance writes; a catches up.
	fake2 := connectortest.NewFake()
	fake2.SetUp("p", true)
	b, _ := manager(t, fake2, eps, "/outage/", "b")
	if _, err := b.Create(ctx, connection.Spec{ID: "after", Type: "fake", Props: map[string]any{"addr": "p"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a catches up", 10*time.Second, func() bool { return state(a, "after") == connection.StateConnected })
	if _, err := b.Get("kept"); err != nil {
		t.Errorf("the connection acknowledged before the outage: %v", err)
	}
	if _, err := b.Get("during"); err == nil {
		t.Errorf("the create that failed during the outage was stored")
	}
}

// TestSecretsSealedInEtcd: with a secret key, what reaches etcd holds no
// secret in clear, and another instance with the same key dials with it.
func TestSecretsSealedInEtcd(t *testing.T) {
	ep := connectortest.Env(t, "CONNKIT_ETCD_ENDPOINTS")
	key := []byte("0123456789abcdef0123456789abcdef")
	p := newPrefix(t)
	fake := connectortest.NewFake()
	fake.SetUp("p", true)
	var ms []*connection.Manager
	var st *etcd.Store
	for _, inst := range []string{"a", "b"} {
		s, err := etcd.Open(context.Background(), []string{ep}, &etcd.Options{Prefix: p, Instance: inst})
		if err != nil {
			t.Fatal(err)
		}
		reg := &registry.Registry{}
		reg.Register("fake", fake)
		m, err := connection.New(context.Background(), s, &connection.Options{Registry: reg, SecretKey: key, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(); s.Close() })
		ms, st = append(ms, m), s
	}
	if _, err := ms[0].Create(context.Background(), connection.Spec{ID: "c1", Type: "fake", Props: map[string]any{"addr": "p", "password": "pw-in-clear"}}); err != nil {
		t.Fatal(err)
	}
	res, err := st.Client().Get(context.Background(), p+"c/c1")
	if err != nil || len(res.Kvs) != 1 {
		t.Fatalf("raw read: %v %v", res, err)
	}
	if strings.Contains(string(res.Kvs[0].Value), "pw-in-clear") {
		t.Fatalf("the secret reached etcd in clear: %s", res.Kvs[0].Value)
	}
	eventually(t, "c1 connected on b", 2*time.Second, func() bool { return state(ms[1], "c1") == connection.StateConnected })
}

// TestAttachRacesDeleteAcrossManagers: an Attach on one instance racing a
// Delete of the same connection on another: exactly one of them wins. The
// attach fails not_found or the delete fails in_use, never both succeed,
// and the loser leaves nothing behind.
func TestAttachRacesDeleteAcrossManagers(t *testing.T) {
	ep := connectortest.Env(t, "CONNKIT_ETCD_ENDPOINTS")
	fake := connectortest.NewFake()
	fake.SetUp("p", true)
	p := newPrefix(t)
	a, _ := manager(t, fake, []string{ep}, p, "a")
	b, _ := manager(t, fake, []string{ep}, p, "b")
	ctx := context.Background()
	var attached, deleted int
	for i := range 40 {
		id := fmt.Sprintf("race-%d", i)
		if _, err := a.Create(ctx, connection.Spec{ID: id, Type: "fake", Props: map[string]any{"addr": "p"}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, id+" on b", time.Second, func() bool { _, err := b.Get(id); return err == nil })
		start := make(chan struct{})
		var attachErr, deleteErr error
		var wg sync.WaitGroup
		wg.Go(func() { <-start; _, attachErr = b.Attach(ctx, id, "rule/source") })
		wg.Go(func() { <-start; deleteErr = a.Delete(ctx, id, connection.Tag{}) })
		close(start)
		wg.Wait()
		var ce *connection.Error
		switch {
		case attachErr == nil && deleteErr == nil:
			t.Fatalf("%s: both the attach on b and the delete on a succeeded", id)
		case attachErr == nil:
			if !errors.As(deleteErr, &ce) || ce.Code != connection.CodeInUse {
				t.Fatalf("%s: the attach won, the delete failed with %v, want in_use", id, deleteErr)
			}
			attached++
			b.Detach(id, "rule/source")
			if err := a.Delete(ctx, id, connection.Tag{}); err != nil {
				t.Fatalf("%s: delete after the detach: %v", id, err)
			}
		case deleteErr == nil:
			if !errors.As(attachErr, &ce) || ce.Code != connection.CodeNotFound {
				t.Fatalf("%s: the delete won, the attach failed with %v, want not_found", id, attachErr)
			}
			deleted++
		default:
			t.Fatalf("%s: both failed: attach %v, delete %v", id, attachErr, deleteErr)
		}
		eventually(t, id+" gone on b", time.Second, func() bool { _, err := b.Get(id); return err != nil })
	}
	eventually(t, "every link closed", time.Second, func() bool { return fake.OpenConns("p") == 0 })
	t.Logf("attach won %d, delete won %d", attached, deleted)
}

// TestLeaseLostRefsNotRevived: an instance cut off for longer than its
// refs' time-to-live loses them; another deletes the connection; when the
// first is back, its old attach is not published again, so a new
// connection of the same id is not held by it.
func TestLeaseLostRefsNotRevived(t *testing.T) {
	ep := connectortest.Env(t, "CONNKIT_ETCD_ENDPOINTS")
	fake := connectortest.NewFake()
	fake.SetUp("p", true)
	px := connectortest.NewProxy(t, ep)
	p := newPrefix(t)
	a, sa := managerTTL(t, fake, []string{px.Addr()}, p, "a", 2*time.Second)
	b, sb := manager(t, fake, []string{ep}, p, "b")
	ctx := context.Background()
	if _, err := b.Create(ctx, connection.Spec{ID: "x", Type: "fake", Props: map[string]any{"addr": "p"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "x on a", 2*time.Second, func() bool { return state(a, "x") == connection.StateConnected })
	if _, err := a.Attach(ctx, "x", "rule1/src"); err != nil {
		t.Fatal(err)
	}
	grants := sa.Grants()
	px.Cut()
	eventually(t, "b deletes x once a's lease expired", 10*time.Second, func() bool { return b.Delete(ctx, "x", connection.Tag{}) == nil })
	px.Restore()
	eventually(t, "x gone on a", 10*time.Second, func() bool { _, err := a.Get("x"); return err != nil })
	eventually(t, "a's new lease", 10*time.Second, func() bool { return sa.Grants() > grants })
	if _, err := b.Create(ctx, connection.Spec{ID: "x", Type: "fake", Props: map[string]any{"addr": "p"}}); err != nil {
		t.Fatal(err)
	}
	res, err := sb.Client().Get(ctx, p+"r/", clientv3.WithPrefix())
	if err != nil || len(res.Kvs) != 0 {
		t.Fatalf("ref keys after the lease was regranted: %v %v", res.Kvs, err)
	}
	eventually(t, "new x on a", 2*time.Second, func() bool { return state(a, "x") == connection.StateConnected })
	a.Detach("x", "rule1/src") // of the old x: does nothing
	if err := b.Delete(ctx, "x", connection.Tag{}); err != nil {
		t.Fatalf("the new x, which nobody holds: %v", err)
	}
}

// TestCutInstanceDecidesFromStore: an instance cut off from etcd has not
// seen another's delete and update; a create it is asked for is not
// refused as existing, nor an apply found unchanged, from its memory:
// both are unavailable, and nothing is changed. After the heal it
// follows both writes.
func TestCutInstanceDecidesFromStore(t *testing.T) {
	ep := connectortest.Env(t, "CONNKIT_ETCD_ENDPOINTS")
	p := newPrefix(t)
	fake := connectortest.NewFake()
	fake.SetUp("x", true)
	proxy := connectortest.NewProxy(t, ep)
	a, _ := manager(t, fake, []string{ep}, p, "a")
	c, _ := manager(t, fake, []string{proxy.Addr()}, p, "c")
	ctx := context.Background()
	spec := func(id string, retries int) connection.Spec {
		return connection.Spec{ID: id, Type: "fake", Props: map[string]any{"addr": "x", "retries": retries}}
	}
	for _, id := range []string{"k1", "k2"} {
		if _, err := a.Create(ctx, spec(id, 1)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "c follows", 2*time.Second, func() bool { _, err := c.Get("k2"); return err == nil })
	proxy.Cut()
	if err := a.Delete(ctx, "k1", connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Update(ctx, spec("k2", 2), connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	unavailable := func(what string, err error) {
		t.Helper()
		var ce *connection.Error
		if !errors.As(err, &ce) || ce.Code != connection.CodeUnavailable {
			t.Errorf("%s on the cut instance: %v, want unavailable", what, err)
		}
	}
	_, err := c.Create(ctx, spec("k1", 1))
	unavailable("create of an id it still holds", err)
	res, err := c.Apply(ctx, []connection.Spec{spec("k1", 1), spec("k2", 1)}, nil)
	unavailable(fmt.Sprintf("apply of what it holds (%+v)", res), err)
	proxy.Restore()
	eventually(t, "c follows the delete and the update", 5*time.Second, func() bool {
		_, err := c.Get("k1")
		in, err2 := c.Get("k2")
		return err != nil && err2 == nil && in.Version == 2
	})
	if _, err := a.Get("k1"); err == nil {
		t.Error("k1 was created again")
	}
}

// TestRefsFencedAcrossPartition: an instance cut off from etcd holds two
// connections. It says that its refs may have lapsed before any other
// instance can write past them; once another instance has updated one
// and deleted the other, the attaches on them are revoked, each saying
// why, never left with a closed client in silence, and no ref of theirs
// is published again.
func TestRefsFencedAcrossPartition(t *testing.T) {
	ep := connectortest.Env(t, "CONNKIT_ETCD_ENDPOINTS")
	fake := connectortest.NewFake()
	fake.SetUp("p", true)
	px := connectortest.NewProxy(t, ep)
	p := newPrefix(t)
	c, _ := managerTTL(t, fake, []string{px.Addr()}, p, "c", 2*time.Second)
	a, _ := manager(t, fake, []string{ep}, p, "a")
	ctx := context.Background()
	spec := func(id string, retries int) connection.Spec {
		return connection.Spec{ID: id, Type: "fake", Props: map[string]any{"addr": "p", "retries": retries}}
	}
	for _, id := range []string{"k1", "k2"} {
		if _, err := a.Create(ctx, spec(id, 1)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "c follows", 2*time.Second, func() bool { return state(c, "k2") == connection.StateConnected })
	h1, err := c.Hold(ctx, "k1", "rule1")
	if err != nil {
		t.Fatal(err)
	}
	h2, err := c.Hold(ctx, "k2", "rule2")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs := c.Subscribe(sctx, connection.SubscribeOptions{})
	var mu sync.Mutex
	lapsed := map[string]time.Time{}
	revoked := map[string]bool{}
	go func() {
		for ev := range evs {
			mu.Lock()
			switch ev.Kind {
			case connection.EventRefsLapsed:
				lapsed[ev.ID] = time.Now()
			case connection.EventRevoked:
				revoked[ev.ID+" "+ev.Ref] = true
			}
			mu.Unlock()
		}
	}()
	px.Cut()
	var updated time.Time
	eventually(t, "a updates k1 once c's refs lapsed", 10*time.Second, func() bool {
		_, err := a.Update(ctx, spec("k1", 2), connection.Tag{})
		updated = time.Now()
		return err == nil
	})
	mu.Lock()
	for _, id := range []string{"k1", "k2"} {
		if at, ok := lapsed[id]; !ok || !at.Before(updated) {
			t.Errorf("%s: c said its refs lapsed at %v, the update of another instance was accepted at %v: the warning must come first", id, at, updated)
		}
	}
	mu.Unlock()
	if !c.RefsLapsed() {
		t.Error("RefsLapsed is false on the cut instance")
	}
	if err := a.Delete(ctx, "k2", connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h1.Done():
		t.Fatal("revoked before c saw the update")
	default:
	}
	px.Restore()
	for _, h := range []*connection.Handle{h1, h2} {
		select {
		case <-h.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the attach was not revoked after the heal", h.ID())
		}
	}
	want := map[*connection.Handle]string{h1: "k1\" was updated", h2: "k2\" was deleted"}
	for h, w := range want {
		if err := h.Err(); !errors.Is(err, connection.ErrRevoked) || !strings.Contains(err.Error(), w) {
			t.Errorf("%s: Err %v, want ErrRevoked saying %s", h.ID(), err, w)
		}
	}
	eventually(t, "revoked events", 2*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return revoked["k1 rule1"] && revoked["k2 rule2"]
	})
	eventually(t, "refs hold again", 5*time.Second, func() bool { return !c.RefsLapsed() })
	if in, err := c.Get("k1"); err != nil || len(in.Refs) != 0 || in.Version != 2 {
		t.Errorf("k1 on c: %+v %v, want version 2 with no refs", in, err)
	}
	// No ref of c's is published again: a updates k1 once more.
	if _, err := a.Update(ctx, spec("k1", 3), connection.Tag{}); err != nil {
		t.Errorf("k1 after the heal: %v", err)
	}
	h1.Close()
	h2.Close()
}
