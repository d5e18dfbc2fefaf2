package etcd_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/store/etcd"
)

// TestNestedPrefixes: keys under a prefix whose id is no valid id (the
// records and refs of a store nested under it, written before stores
// marked their prefixes) are no records of it: it never lists, dials or
// deletes them.
func TestNestedPrefixes(t *testing.T) {
	ep := connectortest.Env(t, "CONNKIT_ETCD_ENDPOINTS")
	p := strings.TrimSuffix(newPrefix(t), "/")
	fake := connectortest.NewFake()
	fake.SetUp("x", true)
	outer, st := manager(t, fake, []string{ep}, p, "a")
	ctx := context.Background()
	for _, id := range []string{"q", "fromb"} {
		if _, err := outer.Create(ctx, connection.Spec{ID: id, Type: "fake", Props: map[string]any{"addr": "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	rec := `{"type":"fake","props":{"addr":"x"}}`
	for _, k := range []string{"/c/q/c/fromb", "/c/q/c/q", "/c/q/r/fromb/b/tok/rule1", "/c/../c/x", "/c/a b"} {
		if _, err := st.Client().Put(ctx, p+k, rec); err != nil {
			t.Fatal(err)
		}
	}
	// A write after those: once it is followed, so were they.
	if _, err := st.Client().Put(ctx, p+"/c/sync", rec); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the outer store follows its own writes", 2*time.Second, func() bool { _, err := outer.Get("sync"); return err == nil })
	var ids []string
	for _, in := range outer.List() {
		ids = append(ids, in.ID)
	}
	if got := strings.Join(ids, ","); got != "fromb,q,sync" {
		t.Errorf("lists %s", got)
	}
	if err := outer.Delete(ctx, "fromb", connection.Tag{}); err != nil {
		t.Errorf("its own fromb: %v", err)
	}
	if res, _ := st.Client().Get(ctx, p+"/c/q/c/fromb"); len(res.Kvs) != 1 {
		t.Error("the nested fromb went with the outer one")
	}
}

// TestNestedPrefixRefused: a store whose prefix lies among another's
// refs (/p/r/x inside /p), or holds another, is refused at Open, naming
// the other, whichever opens first; prefixes beside each other are not.
func TestNestedPrefixRefused(t *testing.T) {
	ep := connectortest.Env(t, "CONNKIT_ETCD_ENDPOINTS")
	for _, order := range [][2]string{{"", "/r/x"}, {"/r/y", ""}, {"", "/c/q"}, {"/c/q", ""}, {"", "/q"}} {
		p := strings.TrimSuffix(newPrefix(t), "/")
		first, err := etcd.Open(context.Background(), []string{ep}, &etcd.Options{Prefix: p + order[0]})
		if err != nil {
			t.Fatal(err)
		}
		_, err = etcd.Open(context.Background(), []string{ep}, &etcd.Options{Prefix: p + order[1]})
		if err == nil || !strings.Contains(err.Error(), "another store") {
			t.Errorf("%s then %s: %v", p+order[0], p+order[1], err)
		}
		beside, err := etcd.Open(context.Background(), []string{ep}, &etcd.Options{Prefix: p + "-beside"})
		if err != nil {
			t.Errorf("a prefix beside: %v", err)
		} else {
			beside.Close()
		}
		first.Close()
	}
}

// TestNestedPrefixesAtOnce: two stores with nested prefixes that open at
// the same moment never both run.
func TestNestedPrefixesAtOnce(t *testing.T) {
	ep := connectortest.Env(t, "CONNKIT_ETCD_ENDPOINTS")
	for range 20 {
		p := strings.TrimSuffix(newPrefix(t), "/")
		var wg sync.WaitGroup
		stores := make([]*etcd.Store, 2)
		for i, pre := range []string{p, p + "/r/x"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				stores[i], _ = etcd.Open(context.Background(), []string{ep}, &etcd.Options{Prefix: pre})
			}()
		}
		wg.Wait()
		if stores[0] != nil && stores[1] != nil {
			t.Errorf("%s and %s/r/x both opened", p, p)
		}
		for _, s := range stores {
			if s != nil {
				s.Close()
			}
		}
	}
}

// TestDamagedRecordEveryInstance: a value under a record's key that is
// not a record, and a record whose non-secret prop looks sealed, never
// stop an instance from starting: each loads them as connections that
// cannot run (the look-alike runs), and an update mends the damaged one
// for every instance.
func TestDamagedRecordEveryInstance(t *testing.T) {
	ep := connectortest.Env(t, "CONNKIT_ETCD_ENDPOINTS")
	p := newPrefix(t)
	fake := connectortest.NewFake()
	fake.SetUp("x", true)
	a, st := manager(t, fake, []string{ep}, p, "a")
	ctx := context.Background()
	if _, err := a.Create(ctx, connection.Spec{ID: "ok", Type: "fake", Props: map[string]any{"addr": "x"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Client().Put(ctx, p+"c/damaged", "not a record"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Client().Put(ctx, p+"c/alike", `{"type":"fake","props":{"addr":"connkit:sealed:v1:AAAA"}}`); err != nil {
		t.Fatal(err)
	}
	for _, inst := range []string{"b", "c"} {
		m, _ := manager(t, fake, []string{ep}, p, inst)
		in, err := m.Get("damaged")
		if err != nil || !in.Permanent || !strings.Contains(in.Err, "not a record") {
			t.Fatalf("%s: damaged: %+v %v", inst, in.Status, err)
		}
		if in, err := m.Get("alike"); err != nil || in.Permanent {
			t.Errorf("%s: alike: %+v %v", inst, in.Status, err)
		}
		eventually(t, inst+": ok connected", 2*time.Second, func() bool { return state(m, "ok") == connection.StateConnected })
	}
	eventually(t, "a follows the damaged write", 2*time.Second, func() bool { in, err := a.Get("damaged"); return err == nil && in.Permanent })
	if _, err := a.Update(ctx, connection.Spec{ID: "damaged", Type: "fake", Props: map[string]any{"addr": "x"}}, connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "damaged mended and connected", 2*time.Second, func() bool { return state(a, "damaged") == connection.StateConnected })
}

// TestDryRunSeesOtherInstancesRefs: a dry run of an apply that would
// prune or update a connection another instance holds says refused,
// naming the instance and its ref, as the real apply then does.
func TestDryRunSeesOtherInstancesRefs(t *testing.T) {
	ep := connectortest.Env(t, "CONNKIT_ETCD_ENDPOINTS")
	p := newPrefix(t)
	fake := connectortest.NewFake()
	fake.SetUp("x", true)
	a, _ := manager(t, fake, []string{ep}, p, "a")
	b, _ := manager(t, fake, []string{ep}, p, "b")
	ctx := context.Background()
	for _, id := range []string{"held", "upd"} {
		if _, err := a.Create(ctx, connection.Spec{ID: id, Type: "fake", Props: map[string]any{"addr": "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "b follows", 2*time.Second, func() bool { _, err := b.Get("upd"); return err == nil })
	for _, id := range []string{"held", "upd"} {
		if _, err := b.Attach(ctx, id, "rule1"); err != nil {
			t.Fatal(err)
		}
		defer b.Detach(id, "rule1")
	}
	set := []connection.Spec{{ID: "upd", Type: "fake", Props: map[string]any{"addr": "x", "retries": 9}}}
	for _, dry := range []bool{true, false} {
		res, err := a.Apply(ctx, set, &connection.ApplyOptions{Prune: true, DryRun: dry})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Action != connection.ActionRefused || len(r.Refs) != 1 || r.Refs[0] != "b: rule1" {
				t.Errorf("dry run %v: %s %s %v %v", dry, r.ID, r.Action, r.Refs, r.Err)
			}
		}
	}
}
