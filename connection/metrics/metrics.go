// Package metrics exports the metrics of a connection.Manager to
// Prometheus.
//
// Register it on the Registerer of your choice; examples/server serves it
// on GET /metrics:
//
//	reg := prometheus.NewRegistry()
//	if _, err := metrics.Register(reg, m); err != nil { ... }
//	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// The gauges are read from the Manager at each scrape, so a scrape right
// after a change of state sees it; counters and histograms are updated as
// the Manager dials, checks and calls its store. The metrics:
//
//	connkit_connection_state{connection,type,state}                   1 for the current state, 0 for the others
//	connkit_connection_state_changed_timestamp_seconds{connection,type}
//	connkit_connection_last_activity_timestamp_seconds{connection,type} for types that report traffic, once there was some
//	connkit_connection_refs{connection,type}                           attaches holding the connection
//	connkit_connection_dials_total{connection,type,result}             result ok or error
//	connkit_checks_in_flight
//	connkit_check_duration_seconds{type,role,result}                   role source or sink; result ok or the reason it failed
//	connkit_store_operation_duration_seconds{operation,result}         result ok or error
//
// Labels never carry error text: the reasons are a short fixed list.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connkit/connkit/connection"
)

var states = []connection.State{connection.StateConnecting, connection.StateConnected, connection.StateDisconnected}

// Collector is the metrics of one Manager: a prometheus.Collector and a
// connection.Observer.
type Collector struct {
	m *connection.Manager

	state, changed, activity, refs, inFlight, dials *prometheus.Desc

	checks *prometheus.HistogramVec
	store  *prometheus.HistogramVec

	mu    sync.Mutex
	dialN map[dialKey]float64
}

type dialKey struct{ id, typ, result string }

// New returns the Collector of m, which observes m from now on. Register
// it yourself, or use Register.
func New(m *connection.Manager) *Collector {
	c := &Collector{
		m: m,
		state: prometheus.NewDesc("connkit_connection_state",
			"Whether the connection is in the state: 1 for its current state, 0 for the others.",
			[]string{"connection", "type", "state"}, nil),
		changed: prometheus.NewDesc("connkit_connection_state_changed_timestamp_seconds",
			"When the connection's state last changed, in seconds since the Unix epoch.",
			[]string{"connection", "type"}, nil),
		activity: prometheus.NewDesc("connkit_connection_last_activity_timestamp_seconds",
			"When the connection last carried a message, in seconds since the Unix epoch.",
			[]string{"connection", "type"}, nil),
		refs: prometheus.NewDesc("connkit_connection_refs",
			"How many attaches hold the connection.",
			[]string{"connection", "type"}, nil),
		inFlight: prometheus.NewDesc("connkit_checks_in_flight",
			"Connectivity checks running now.", nil, nil),
		dials: prometheus.NewDesc("connkit_connection_dials_total",
			"Dials of the connection's link, by result (ok or error).",
			[]string{"connection", "type", "result"}, nil),
		checks: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "connkit_check_duration_seconds",
			Help:    "Duration of connectivity checks, by type, role (source or sink) and result (ok or the reason it failed).",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"type", "role", "result"}),
		store: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "connkit_store_operation_duration_seconds",
			Help:    "Duration of the store's writes, by operation (create, update, delete) and result (ok or error).",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5},
		}, []string{"operation", "result"}),
		dialN: map[dialKey]float64{},
	}
	m.Observe(c)
	return c
}

// Register makes the Collector of m and registers it on reg (never the
// global registry unless you pass prometheus.DefaultRegisterer).
func Register(reg prometheus.Registerer, m *connection.Manager) (*Collector, error) {
	c := New(m)
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	return c, nil
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.changed, c.activity, c.refs, c.inFlight, c.dials} {
		ch <- d
	}
	c.checks.Describe(ch)
	c.store.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ins := c.m.List()
	live := make(map[string]string, len(ins))
	for _, in := range ins {
		live[in.ID] = in.Type
		for _, s := range states {
			v := 0.0
			if in.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, in.ID, in.Type, string(s))
		}
		ch <- prometheus.MustNewConstMetric(c.changed, prometheus.GaugeValue, seconds(in.Since), in.ID, in.Type)
		if !in.LastActivityAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.activity, prometheus.GaugeValue, seconds(in.LastActivityAt), in.ID, in.Type)
		}
		ch <- prometheus.MustNewConstMetric(c.refs, prometheus.GaugeValue, float64(in.RefCount), in.ID, in.Type)
	}
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(c.m.ChecksInFlight()))
	c.mu.Lock()
	for k, n := range c.dialN {
		if live[k.id] != k.typ {
			delete(c.dialN, k) // deleted, or replaced by one of another type
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.dials, prometheus.CounterValue, n, k.id, k.typ, k.result)
	}
	c.mu.Unlock()
	c.checks.Collect(ch)
	c.store.Collect(ch)
}

func seconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// Dialed implements connection.Observer.
func (c *Collector) Dialed(id, typ string, err error) {
	k := dialKey{id, typ, result(err)}
	c.mu.Lock()
	c.dialN[k]++
	c.mu.Unlock()
}

// StoreCalled implements connection.Observer.
func (c *Collector) StoreCalled(op string, took time.Duration, err error) {
	c.store.WithLabelValues(op, result(err)).Observe(took.Seconds())
}

// Checked implements connection.Observer.
func (c *Collector) Checked(typ, role string, took time.Duration, result string) {
	c.checks.WithLabelValues(typ, role, result).Observe(took.Seconds())
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}
