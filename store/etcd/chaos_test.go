package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store"
	"github.com/connkit/connkit/store/etcd"
	"github.com/connkit/connkit/store/etcd/etcdtest"
)

// The chaos test's history: one operation of a client on one id.
type chaosIn struct {
	Kind string // create, update, delete, read
	ID   string
	Val  string    // the unique value a write carries (the retries prop)
	At   store.Tag // If-Match; zero for any
}

type chaosOut struct {
	Result string // ok, exists, notfound, mismatch, inuse, unknown
	Tag    store.Tag
	Val    string
}

// register is the model's state of one id: a compare-and-set register
// whose tag the store chooses. Known is false after a write of unknown
// outcome, until a read tells the tag.
type register struct {
	Exists bool
	Val    string
	Tag    store.Tag
	Known  bool
}

// chaosModel: each id is a register; an operation that answered
// unavailable may or may not have been applied, at any time after its
// call.
var chaosModel = porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		for _, op := range h {
			id := op.Input.(chaosIn).ID
			by[id] = append(by[id], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range by {
			out = append(out, ops)
		}
		return out
	},
	Init: func() []any { return []any{register{Known: true}} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(register), input.(chaosIn), output.(chaosOut)
		anyTag := in.At == store.Tag{}
		matches := s.Exists && (anyTag || !s.Known || s.Tag == in.At)
		mismatch := s.Exists && !anyTag && (!s.Known || s.Tag != in.At)
		written := register{Exists: true, Val: in.Val, Tag: out.Tag, Known: out.Result == "ok"}
		switch in.Kind + " " + out.Result {
		case "create ok":
			if !s.Exists {
				return []any{written}
			}
		case "create exists", "update inuse", "delete inuse":
			if s.Exists {
				return []any{s}
			}
		case "create unknown":
			if !s.Exists {
				return []any{s, written}
			}
			return []any{s}
		case "update ok":
			if matches && (!s.Known || out.Tag.Incarnation == s.Tag.Incarnation && out.Tag.Version == s.Tag.Version+1) {
				return []any{written}
			}
		case "update notfound", "delete notfound", "read notfound":
			if !s.Exists {
				return []any{s}
			}
		case "update mismatch", "delete mismatch":
			if mismatch {
				return []any{s}
			}
		case "update unknown":
			if matches {
				return []any{s, written}
			}
			return []any{s}
		case "delete ok":
			if matches {
				return []any{register{Known: true}}
			}
		case "delete unknown":
			if matches {
				return []any{s, register{Known: true}}
			}
			return []any{s}
		case "read ok":
			if s.Exists && s.Val == out.Val && (!s.Known || s.Tag == out.Tag) {
				s.Tag, s.Known = out.Tag, true
				return []any{s}
			}
		}
		return nil
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(chaosIn), output.(chaosOut)
		return fmt.Sprintf("%s %s val=%s at=%v -> %s %v %s", in.Kind, in.ID, in.Val, in.At, out.Result, out.Tag, out.Val)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%+v", state.(register)) },
}

// outcome reads a Manager's answer as the model does.
func outcome(err error) string {
	var ce *connection.Error
	if err == nil {
		return "ok"
	}
	if errors.As(err, &ce) {
		switch ce.Code {
		case connection.CodeAlreadyExists:
			return "exists"
		case connection.CodeNotFound:
			return "notfound"
		case connection.CodeVersionMismatch:
			return "mismatch"
		case connection.CodeInUse:
			return "inuse"
		}
	}
	return "unknown"
}

// fault is one turn of the nemesis, and what was measured of it.
type fault struct {
	name        string
	from, to    time.Duration // since the start
	convergence time.Duration // from the heal until every instance shows what etcd holds
}

// TestChaos runs three instances on a three-member etcd cluster (the
// third through a proxy), three clients sending random creates, updates
// and deletes (with and without If-Match) and fresh reads over 8 ids to
// random instances, while a nemesis kills a member, pauses the leader
// and a follower, cuts the third instance off and stops all of etcd.
// Every write carries a value of its own. The history must be
// linearizable per id (porcupine), every write must answer within the
// write timeout, and after every heal the instances must converge on
// what etcd holds. CONNKIT_CHAOS_SECONDS sets the length (make bench
// runs it long) and CONNKIT_CHAOS_SEED the clients' seed (logged); the
// measures are logged.
func TestChaos(t *testing.T) {
	// Short by default (each fault once, held 2-3 s); long, the faults
	// are held as long as the tester held them (pauses of 5-15 s,
	// a cut past the refs' time-to-live, etcd down 10 s).
	secs, long := 32, false
	if v := os.Getenv("CONNKIT_CHAOS_SECONDS"); v != "" {
		secs, _ = strconv.Atoi(v)
		long = true
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CONNKIT_CHAOS_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (CONNKIT_CHAOS_SEED)", seed)
	hold := func(short, long1 time.Duration) time.Duration {
		if long {
			return long1
		}
		return short
	}
	members := etcdtest.Cluster(t, 3)
	eps := etcdtest.Endpoints(members)
	px := connectortest.NewProxy(t, eps[0])
	fake := connectortest.NewFake()
	fake.SetUp("p", true)
	logs := slog.New(slog.DiscardHandler)
	prefix := newPrefix(t)
	open := func(name string, eps []string) (*connection.Manager, *etcd.Store) {
		s, err := etcd.Open(context.Background(), eps, &etcd.Options{Prefix: prefix, Instance: name, Logger: logs})
		if err != nil {
			t.Fatal(err)
		}
		reg := &registry.Registry{}
		reg.Register("fake", fake)
		m, err := connection.New(context.Background(), s, &connection.Options{Registry: reg, Logger: logs})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(); s.Close() })
		return m, s
	}
	ma, _ := open("a", eps)
	mb, _ := open("b", eps)
	mc, _ := open("c", []string{px.Addr()})
	managers := []*connection.Manager{ma, mb, mc}
	_, plain := open("reader", eps)
	ids := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}

	start := time.Now()
	end := start.Add(time.Duration(secs) * time.Second)
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		lat     = map[string][]time.Duration{} // write latency by the fault at its call
		current atomic.Value                   // the fault now, or ""
		vals    atomic.Int64
		wg      sync.WaitGroup
	)
	current.Store("none")
	ctx := context.Background()
	for client := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(client), seed))
			seen := map[string]store.Tag{}
			for time.Now().Before(end) {
				mi := rng.IntN(len(managers))
				m := managers[mi]
				id := ids[rng.IntN(len(ids))]
				val := vals.Add(1)
				in := chaosIn{ID: id, Val: strconv.FormatInt(val, 10)}
				if rng.IntN(2) == 0 {
					in.At = seen[id]
				}
				spec := connection.Spec{ID: id, Type: "fake", Props: map[string]any{"addr": "p", "retries": val}}
				fault := current.Load().(string)
				call := time.Since(start)
				var info connection.Info
				var err error
				switch r := rng.IntN(100); {
				case r < 25:
					in.Kind, in.At = "create", store.Tag{}
					info, err = m.Create(ctx, spec)
				case r < 55:
					in.Kind = "update"
					info, err = m.Update(ctx, spec, in.At)
				case r < 70:
					in.Kind = "delete"
					err = m.Delete(ctx, id, in.At)
				default:
					in.Kind, in.Val, in.At = "read", "", store.Tag{}
					info, err = m.Fresh(ctx, id)
				}
				ret := time.Since(start)
				out := chaosOut{Result: outcome(err)}
				if err == nil && in.Kind != "delete" {
					out.Tag = info.Tag()
					out.Val = fmt.Sprint(info.Props["retries"])
					seen[id] = out.Tag
				}
				mu.Lock()
				switch {
				case in.Kind == "read" && out.Result == "unknown":
					// A read that failed tells nothing.
				case out.Result == "unknown":
					// Applied or not, at any time after its call.
					history = append(history, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call.Nanoseconds(), Return: 1 << 62})
				default:
					history = append(history, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call.Nanoseconds(), Return: ret.Nanoseconds()})
				}
				if in.Kind != "read" {
					key := fault + ", on a or b"
					if mi == 2 {
						key = fault + ", on c (one member, proxied)"
					}
					lat[key] = append(lat[key], ret-call)
				}
				mu.Unlock()
				time.Sleep(time.Duration(20+rng.IntN(20)) * time.Millisecond) // pacing, not synchronisation
			}
		}()
	}

	// converged waits until every instance shows what etcd holds.
	converged := func(within time.Duration) (time.Duration, bool) {
		from := time.Now()
		for time.Since(from) < within {
			recs, err := plain.List(ctx)
			if err == nil && slices.IndexFunc(managers, func(m *connection.Manager) bool { return !same(m, recs) }) < 0 {
				return time.Since(from), true
			}
			time.Sleep(5 * time.Millisecond)
		}
		return within, false
	}
	status, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer status.Close()
	leader := func() int {
		for i, m := range members {
			sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			res, err := status.Status(sctx, m.Client)
			cancel()
			if err == nil && res.Header.MemberId == res.Leader {
				return i
			}
		}
		return 0
	}
	var faults []fault
	turns := []struct {
		name       string
		hold       time.Duration
		fail, heal func() // heal returns once etcd is back
	}{
		{"member killed", hold(2*time.Second, 6*time.Second), func() { members[1].Stop() }, func() { members[1].Start(); members[1].WaitHealthy(30 * time.Second) }},
		{"leader paused", hold(3*time.Second, 15*time.Second), nil, nil},
		{"follower paused", hold(3*time.Second, 5*time.Second), nil, nil},
		{"instance c cut off", hold(3*time.Second, 12*time.Second), px.Cut, px.Restore},
		{"etcd down", hold(3*time.Second, 10*time.Second), func() {
			for _, m := range members {
				m.Stop()
			}
		}, func() {
			for _, m := range members {
				m.Start()
			}
			for _, m := range members {
				m.WaitHealthy(30 * time.Second)
			}
		}},
	}
	var paused int
	turns[1].fail = func() { paused = leader(); members[paused].Pause() }
	turns[1].heal = func() { members[paused].Resume(); members[paused].WaitHealthy(30 * time.Second) }
	turns[2].fail = func() { paused = (leader() + 1) % 3; members[paused].Pause() }
	turns[2].heal = turns[1].heal
	time.Sleep(time.Second) // no fault at first: the baseline
	for i := 0; time.Until(end) > 8*time.Second; i++ {
		turn := turns[i%len(turns)]
		f := fault{name: turn.name, from: time.Since(start)}
		current.Store(turn.name)
		turn.fail()
		time.Sleep(turn.hold)
		turn.heal()
		current.Store("none")
		f.to = time.Since(start)
		var ok bool
		f.convergence, ok = converged(10 * time.Second)
		if !ok {
			t.Errorf("%s: the instances did not converge on what etcd holds within 10 s of the heal", f.name)
		}
		faults = append(faults, f)
		time.Sleep(time.Second)
	}
	wg.Wait()
	if _, ok := converged(10 * time.Second); !ok {
		t.Error("at the end, the instances do not show what etcd holds")
	}

	for _, f := range faults {
		t.Logf("%-20s %5.1f-%5.1f s, converged %v after the heal", f.name, f.from.Seconds(), f.to.Seconds(), f.convergence.Round(time.Millisecond))
	}
	for name, ds := range lat {
		slices.Sort(ds)
		q := func(p float64) time.Duration {
			return ds[min(len(ds)-1, int(p*float64(len(ds))))].Round(time.Millisecond)
		}
		t.Logf("writes during %-45s n=%4d p50 %v p99 %v max %v", name, len(ds), q(0.5), q(0.99), ds[len(ds)-1].Round(time.Millisecond))
		if ds[len(ds)-1] > connection.DefaultWriteTimeout+time.Second {
			t.Errorf("a write during %s answered after %v, past the write timeout", name, ds[len(ds)-1])
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d operations", len(history))
	res, info := porcupine.CheckOperationsVerbose(chaosModel.ToModel(), history, time.Minute)
	switch res {
	case porcupine.Illegal:
		file := filepath.Join(os.TempDir(), fmt.Sprintf("connkit-chaos-%d.html", time.Now().UnixNano()))
		porcupine.VisualizePath(chaosModel.ToModel(), info, file)
		t.Errorf("the history is not linearizable; see %s", file)
		for _, ops := range chaosModel.Partition(history) {
			if porcupine.CheckOperations(chaosModel.ToModel(), ops) {
				continue
			}
			slices.SortFunc(ops, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
			for _, op := range ops {
				t.Logf("%8.3f-%8.3f c%d %s", float64(op.Call)/1e9, float64(min(op.Return, 1<<40))/1e9, op.ClientId, chaosModel.DescribeOperation(op.Input, op.Output))
			}
			break
		}
	case porcupine.Unknown:
		t.Logf("porcupine gave no answer within a minute")
	}
}

// same reports whether m shows what recs (etcd's) hold: each id at its
// tag.
func same(m *connection.Manager, recs []store.Record) bool {
	list := m.List()
	if len(list) != len(recs) {
		return false
	}
	for i, in := range list {
		if in.ID != recs[i].ID || in.Tag() != recs[i].Tag() {
			return false
		}
	}
	return true
}
