package mqtt

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// recovery runs n connections with the default options on a private
// mosquitto, kills it for outage, starts it again, and reports how long
// after it accepted again every connection was connected, and how many
// dials reached for it while it was down (counted by the dial policy).
func recovery(tb testing.TB, b *connectortest.Broker, n int, outage, watch time.Duration) (back time.Duration, dialsDown int64) {
	_, back, dialsDown = recoveryOf(tb, b.Addr(), b.Stop, b.Start, n, outage, watch, 0)
	return back, dialsDown
}

// recoveryOf is recovery with the outage of down and up, at addr; a
// dialTimeout of 0 is the Manager's default. It reports the median and
// the longest time to connected over the connections.
func recoveryOf(tb testing.TB, addr string, down, up func(), n int, outage, watch, dialTimeout time.Duration, maxBackoff ...time.Duration) (p50, back time.Duration, dialsDown int64) {
	var mb time.Duration
	if len(maxBackoff) > 0 {
		mb = maxBackoff[0]
	}
	var dials atomic.Int64
	policy := &connector.Policy{Dial: &connector.DialPolicy{Observe: func(netip.AddrPort) { dials.Add(1) }}}
	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg, Policy: policy, WatchInterval: watch,
		DialTimeout: dialTimeout, MaxBackoff: mb, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	defer m.Close()
	for i := range n {
		if _, err := m.Create(context.Background(), connection.Spec{ID: fmt.Sprintf("c%03d", i), Type: Type,
			Props: map[string]any{"server": "tcp://" + addr}}); err != nil {
			tb.Fatal(err)
		}
	}
	all := func(state connection.State, within time.Duration) {
		deadline := time.Now().Add(within)
		for {
			ok := true
			for _, in := range m.List() {
				if in.State != state {
					ok = false
					break
				}
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				tb.Fatalf("not all %d connections %s within %v", n, state, within)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	all(connection.StateConnected, 15*time.Second)
	down()
	before := dials.Load()
	all(connection.StateDisconnected, 10*time.Second)
	time.Sleep(outage) // the outage itself: nothing waits on it
	dialsDown = dials.Load() - before
	up()
	start := time.Now()
	var times []time.Duration
	seen := map[string]bool{}
	for deadline := start.Add(time.Minute); len(times) < n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d connections connected within a minute", len(times), n)
		}
		for _, in := range m.List() {
			if in.State == connection.StateConnected && !seen[in.ID] {
				seen[in.ID] = true
				times = append(times, time.Since(start))
			}
		}
	}
	slices.Sort(times)
	return times[len(times)/2], times[len(times)-1], dialsDown
}

// TestRecoveryAfterOutage: 100 connections with the default options (a
// backoff up to 30 s) are connected again within a second or so of the
// broker's return, and while it was down they dialed it about once each,
// and the address's one watcher about once a second, not each of them
// every second.
func TestRecoveryAfterOutage(t *testing.T) {
	b := connectortest.NewBroker(t)
	b.Start()
	const n, outage = 100, 4 * time.Second
	back, dials := recovery(t, b, n, outage, 0)
	t.Logf("%d connections connected again %v after the broker accepted again; %d dials while it was down %v", n, back.Round(time.Millisecond), dials, outage)
	if back > 5*time.Second {
		t.Errorf("connected again %v after the broker came back, over the 5 s bound", back)
	}
	if dials > n+2*int64(outage/time.Second)+10 {
		t.Errorf("%d dials in a %v outage of %d connections: a storm", dials, outage, n)
	}
}

// TestRecoveryAfterPartition: when the broker's address stops answering
// (dials time out, as in a partition, rather than being refused), 100
// connections are back within a second or so of it answering again,
// not at their backoff, and while it was away they dialed it about once
// each.
func TestRecoveryAfterPartition(t *testing.T) {
	b := connectortest.NewBroker(t)
	b.Start()
	p := connectortest.NewProxy(t, b.Addr())
	const n, outage = 100, 8 * time.Second
	_, back, dials := recoveryOf(t, p.Addr(), p.Blackhole, p.Restore, n, outage, 0, time.Second)
	t.Logf("%d connections connected again %v after the address answered again; %d dials while it was away %v", n, back.Round(time.Millisecond), dials, outage)
	if back > 3*time.Second {
		t.Errorf("connected again %v after the partition healed, over the 3 s bound", back)
	}
	if dials > 2*n+2*int64(outage/time.Second)+10 {
		t.Errorf("%d dials in a %v partition of %d connections: a storm", dials, outage, n)
	}
}

// TestDialCutShortWhenBack: a connection whose dial hangs on an address
// that drops SYNs, after an earlier dial found it so, stops waiting out
// the kernel's SYN retries (seconds apart after the first few) when the
// address's watcher finds it answering, and dials it at once.
func TestDialCutShortWhenBack(t *testing.T) {
	b := connectortest.NewBroker(t)
	b.Start()
	p := connectortest.NewProxy(t, b.Addr())
	const n, outage = 20, 15500 * time.Millisecond
	// Dials of 8 s, a last resort of 1-2 s: the first dials fail at 8 s,
	// the next begin at 9-10 s, and at 15.5 s they wait for a SYN retry
	// due past their own timeout.
	_, back, _ := recoveryOf(t, p.Addr(), p.Blackhole, p.Restore, n, outage, 0, 8*time.Second, 2*time.Second)
	t.Logf("%d connections back %v after the address answered again", n, back.Round(time.Millisecond))
	if back > 1800*time.Millisecond {
		t.Errorf("back %v after the address answered: dials waited out SYN retries", back)
	}
}

// BenchmarkRecoveryCut is issue 23's measure of reconnects: 100
// connections through a proxy that refuses (cut) or drops every packet
// (blackhole) for 20 s and for 60 s, with the default backoff and
// watchers: the median and the longest time to connected after the
// address answers again. Long: make bench runs it once.
func BenchmarkRecoveryCut(b *testing.B) {
	for _, kind := range []string{"refused", "blackhole"} {
		for _, outage := range []time.Duration{20 * time.Second, 60 * time.Second} {
			b.Run(fmt.Sprintf("%s/%v", kind, outage), func(b *testing.B) {
				br := connectortest.NewBroker(b)
				br.Start()
				p := connectortest.NewProxy(b, br.Addr())
				down := p.Cut
				if kind == "blackhole" {
					down = p.Blackhole
				}
				for b.Loop() {
					p50, max, dials := recoveryOf(b, p.Addr(), down, p.Restore, 100, outage, 0, 0)
					b.ReportMetric(p50.Seconds(), "s-p50-connected")
					b.ReportMetric(max.Seconds(), "s-max-connected")
					b.ReportMetric(float64(dials), "dials-during-outage")
				}
			})
		}
	}
}

// BenchmarkRecoveryLongOutage is the 40 s outage of the recovery goal,
// with each connection waiting out its own backoff (the watchers off, as
// before them) and with the watchers, in one run. Long: make bench runs
// it once.
func BenchmarkRecoveryLongOutage(b *testing.B) {
	for _, bc := range []struct {
		name  string
		watch time.Duration
	}{{"backoff", -1}, {"watcher", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			br := connectortest.NewBroker(b)
			br.Start()
			for b.Loop() {
				back, dials := recovery(b, br, 100, 40*time.Second, bc.watch)
				b.ReportMetric(back.Seconds(), "s-to-all-connected")
				b.ReportMetric(float64(dials), "dials-during-outage")
			}
		})
	}
}
