package etcd_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/store"
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
		ma, _ := manager(b, fake, []string{ep}, p, "a")
		mb, _ := manager(b, fake, []string{ep}, p, "b")
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
	for _, bc := range []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"etcd", func(b *testing.B) store.Store {
			return open(b, "w", fmt.Sprintf("/bench-w/%d/", time.Now().UnixNano()))
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
