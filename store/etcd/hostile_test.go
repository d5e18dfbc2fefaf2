package etcd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
)

// TestNestedPrefixes: two servers whose prefixes nest (/p and /p/c/q)
// never see each other's records or refs: each lists, dials and deletes
// only its own.
func TestNestedPrefixes(t *testing.T) {
	ep := connectortest.Env(t, "CONNKIT_ETCD_ENDPOINTS")
	p := strings.TrimSuffix(newPrefix(t), "/")
	fake := connectortest.NewFake()
	fake.SetUp("x", true)
	outer, st := manager(t, fake, []string{ep}, p, "a")
	inner, _ := manager(t, fake, []string{ep}, p+"/c/q", "b")
	ctx := context.Background()
	for _, m := range []*connection.Manager{outer, inner} {
		for _, id := range []string{"q", "c", "r", "fromb"} {
			if _, err := m.Create(ctx, connection.Spec{ID: id, Type: "fake", Props: map[string]any{"addr": "x"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := inner.Attach(ctx, "fromb", "rule1"); err != nil {
		t.Fatal(err)
	}
	defer inner.Detach("fromb", "rule1")
	// A write after all of those, under each prefix: once a server has
	// it, its watch has passed every write it could wrongly see.
	for pre, m := range map[string]*connection.Manager{p: outer, p + "/c/q": inner} {
		if _, err := st.Client().Put(ctx, pre+"/c/sync", `{"type":"fake","props":{"addr":"x"}}`); err != nil {
			t.Fatal(err)
		}
		eventually(t, pre+" follows its own writes", 2*time.Second, func() bool { _, err := m.Get("sync"); return err == nil })
	}
	for name, m := range map[string]*connection.Manager{"outer": outer, "inner": inner} {
		var ids []string
		for _, in := range m.List() {
			ids = append(ids, in.ID)
		}
		if got := strings.Join(ids, ","); got != "c,fromb,q,r,sync" {
			t.Errorf("%s lists %s", name, got)
		}
	}
	if err := outer.Delete(ctx, "fromb", 0); err != nil {
		t.Errorf("the outer server's own fromb, while the inner one's is held: %v", err)
	}
	if _, err := inner.Get("fromb"); err != nil {
		t.Errorf("inner's fromb went with outer's: %v", err)
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
	if _, err := a.Update(ctx, connection.Spec{ID: "damaged", Type: "fake", Props: map[string]any{"addr": "x"}}, 0); err != nil {
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
