package etcd_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store"
	"github.com/connkit/connkit/store/etcd"
	"github.com/connkit/connkit/store/sqlite"
)

// BenchmarkConvergence: 100 creates on one Manager, each timed until the
// other Manager on the same etcd has it connected.
func BenchmarkConvergence(b *testing.B) {
	ep := connectortest.Env(b, "CONNKIT_ETCD_ENDPOINTS")
	fake := connectortest.NewFake()
	fake.SetUp("p", true)
	for b.Loop() {
		p := fmt.Sprintf("/bench-conv/%d/", time.Now().UnixNano())
		ma, _ := benchManager(b, fake, ep, p, "a")
		mb, _ := benchManager(b, fake, ep, p, "b")
		var lat []time.Duration
		for i := range 100 {
			id := fmt.Sprintf("c%03d", i)
			start := time.Now()
			if _, err := ma.Create(context.Background(), connection.Spec{ID: id, Type: "fake", Props: map[string]any{"addr": "p"}}); err != nil {
				b.Fatal(err)
			}
			for state(mb, id) != connection.StateConnected {
				time.Sleep(50 * time.Microsecond)
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[50].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[98].Microseconds())/1000, "p99-ms")
	}
}

// BenchmarkCreates16: creates per second from 16 concurrent writers, on
// etcd and on SQLite (group commit), one after the other.
func BenchmarkCreates16(b *testing.B) {
	ep := connectortest.Env(b, "CONNKIT_ETCD_ENDPOINTS")
	for _, bc := range []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"etcd", func(b *testing.B) store.Store {
			return openB(b, ep, fmt.Sprintf("/bench-w/%d/", time.Now().UnixNano()))
		}},
		{"sqlite", func(b *testing.B) store.Store {
			s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "c.db"))
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := bc.open(b)
			defer s.Close()
			var n atomic.Int64
			start := time.Now()
			var wg sync.WaitGroup
			for w := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < b.N; i++ {
						if _, err := s.Create(context.Background(), store.Record{ID: fmt.Sprintf("w%d-%d", w, i), Type: "fake", Props: []byte(`{"addr":"p"}`)}); err != nil {
							b.Error(err)
							return
						}
						n.Add(1)
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "creates/s")
		})
	}
}

func openB(b *testing.B, ep, prefix string) store.Store {
	s, err := etcd.Open(context.Background(), []string{ep}, &etcd.Options{Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchManager(b *testing.B, fake *connectortest.Fake, ep, prefix, instance string) (*connection.Manager, store.Store) {
	s, err := etcd.Open(context.Background(), []string{ep}, &etcd.Options{Prefix: prefix, Instance: instance, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	reg := &registry.Registry{}
	reg.Register("fake", fake)
	m, err := connection.New(context.Background(), s, &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}
