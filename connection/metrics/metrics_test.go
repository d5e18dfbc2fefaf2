package metrics_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/metrics"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func setup(t *testing.T) (*connection.Manager, *connectortest.Fake, *prometheus.Registry, *metrics.Collector) {
	t.Helper()
	fake := connectortest.NewFake()
	reg := &registry.Registry{}
	reg.Register("fake", fake)
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler),
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, WatchInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	pr := prometheus.NewRegistry()
	c, err := metrics.Register(pr, m)
	if err != nil {
		t.Fatal(err)
	}
	return m, fake, pr, c
}

// TestLint: every metric follows the Prometheus conventions.
func TestLint(t *testing.T) {
	m, fake, _, c := setup(t)
	fake.SetUp("p1", true)
	if _, err := m.Create(context.Background(), connection.Spec{ID: "a", Type: "fake", Props: map[string]any{"addr": "p1"}}); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitConnected(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	m.CheckStarted("fake", "sink")(time.Millisecond, "ok")
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestValuesFollowChanges: a scrape right after a change sees it.
func TestValuesFollowChanges(t *testing.T) {
	m, fake, pr, c := setup(t)
	ctx := context.Background()
	fake.SetUp("p1", true)
	if _, err := m.Create(ctx, connection.Spec{ID: "a", Type: "fake", Props: map[string]any{"addr": "p1"}}); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitConnected(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP connkit_connection_state Whether the connection is in the state: 1 for its current state, 0 for the others.
# TYPE connkit_connection_state gauge
connkit_connection_state{connection="a",state="connected",type="fake"} 1
connkit_connection_state{connection="a",state="connecting",type="fake"} 0
connkit_connection_state{connection="a",state="disconnected",type="fake"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "connkit_connection_state"); err != nil {
		t.Fatal(err)
	}
	fake.SetUp("p1", false)
	connectortest.Eventually(t, "disconnected", func() bool { in, _ := m.Get("a"); return in.State == connection.StateDisconnected })
	// No wait for a refresh: the scrape reads the state as it is.
	want = strings.Replace(strings.Replace(want, `state="connected",type="fake"} 1`, `state="connected",type="fake"} 0`, 1),
		`state="disconnected",type="fake"} 0`, `state="disconnected",type="fake"} 1`, 1)
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "connkit_connection_state"); err != nil {
		t.Fatal(err)
	}
	// The drop set disconnected; the failed redial, counted before the
	// attempt is, comes after a backoff.
	connectortest.Eventually(t, "a failed redial", func() bool { in, _ := m.Get("a"); return in.Attempts >= 1 })
	if _, err := m.Attach(ctx, "a", "r1"); err != nil {
		t.Fatal(err)
	}
	mfs, err := pr.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.Metric {
			key := mf.GetName()
			for _, l := range mt.Label {
				if l.GetName() == "result" {
					key += "/" + l.GetValue()
				}
			}
			switch {
			case mt.Gauge != nil:
				got[key] = mt.Gauge.GetValue()
			case mt.Counter != nil:
				got[key] = mt.Counter.GetValue()
			case mt.Histogram != nil:
				got[key] = float64(mt.Histogram.GetSampleCount())
			}
		}
	}
	if got["connkit_connection_refs"] != 1 {
		t.Errorf("refs %v, want 1", got["connkit_connection_refs"])
	}
	if got["connkit_connection_dials_total/ok"] < 1 || got["connkit_connection_dials_total/error"] < 1 {
		t.Errorf("dials: ok %v, error %v; want both at least 1", got["connkit_connection_dials_total/ok"], got["connkit_connection_dials_total/error"])
	}
	if got["connkit_store_operation_duration_seconds/ok"] != 1 {
		t.Errorf("store operations %v, want the create", got["connkit_store_operation_duration_seconds/ok"])
	}
	if ts := got["connkit_connection_state_changed_timestamp_seconds"]; time.Since(time.Unix(int64(ts), 0)) > time.Minute {
		t.Errorf("state changed at %v", ts)
	}
	// A deleted connection leaves no series behind.
	m.Detach("a", "r1")
	if err := m.Delete(ctx, "a", connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c, "connkit_connection_state", "connkit_connection_dials_total", "connkit_connection_refs"); n != 0 {
		t.Errorf("%d series of a deleted connection", n)
	}
}

// TestRegisterTwice: a second Collector of one name on one registry is
// refused, not panicked over.
func TestRegisterTwice(t *testing.T) {
	m, _, pr, _ := setup(t)
	_, err := metrics.Register(pr, m)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Fatalf("second Register: %v", err)
	}
}
