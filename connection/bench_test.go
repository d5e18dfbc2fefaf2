package connection_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store"
	"github.com/connkit/connkit/store/memory"
	"github.com/connkit/connkit/store/sqlite"
)

func benchManager(b *testing.B, st store.Store, n int) *connection.Manager {
	b.Helper()
	reg := &registry.Registry{}
	reg.Register("fake", connectortest.NewFake())
	m, err := connection.New(context.Background(), st, &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	for i := range n {
		_, err := m.Create(context.Background(), connection.Spec{ID: fmt.Sprintf("conn-%05d", i), Type: "fake",
			Props: map[string]any{"addr": "p", "password": "pw", "header": map[string]any{"Authorization": "x", "A": "b"}}})
		if err != nil {
			b.Fatal(err)
		}
	}
	return m
}

// BenchmarkGet reads one connection among 1 and among 10,000: a map
// lookup, so both should cost the same.
func BenchmarkGet(b *testing.B) {
	for _, n := range []int{1, 10000} {
		b.Run(fmt.Sprintf("of%d", n), func(b *testing.B) {
			m := benchManager(b, memory.New(), n)
			ids := make([]string, n)
			for i := range ids {
				ids[i] = fmt.Sprintf("conn-%05d", i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if _, err := m.Get(ids[i%n]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkGet10kParallel(b *testing.B) {
	m := benchManager(b, memory.New(), 10000)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := m.Get(fmt.Sprintf("conn-%05d", i%10000)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkList10k(b *testing.B) {
	m := benchManager(b, memory.New(), 10000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if l := m.List(); len(l) != 10000 {
			b.Fatal(len(l))
		}
	}
}

func BenchmarkAttachDetach(b *testing.B) {
	m := benchManager(b, memory.New(), 1)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := m.Attach(ctx, "conn-00000", "rule1/source"); err != nil {
			b.Fatal(err)
		}
		m.Detach("conn-00000", "rule1/source")
	}
}

func BenchmarkAttachDetachParallel(b *testing.B) {
	m := benchManager(b, memory.New(), 1)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		ref := fmt.Sprintf("rule%d/source", n.Add(1))
		for pb.Next() {
			if _, err := m.Attach(ctx, "conn-00000", ref); err != nil {
				b.Fatal(err)
			}
			m.Detach("conn-00000", ref)
		}
	})
}

// BenchmarkCreateSQLite is create throughput through the Manager on the
// SQLite store: each op is one durable (fsync'd) insert and a dial loop
// started.
func BenchmarkCreateSQLite(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	m := benchManager(b, st, 0)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := m.Create(ctx, connection.Spec{ID: fmt.Sprintf("c%d", i), Type: "fake", Props: map[string]any{"addr": "p"}}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkAttachDuringList is Attach+Detach while another goroutine lists
// 10,000 connections without pause: it shows how long List holds the
// Manager's lock.
func BenchmarkAttachDuringList(b *testing.B) {
	m := benchManager(b, memory.New(), 10000)
	ctx := context.Background()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				m.List()
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := m.Attach(ctx, "conn-00000", "rule1/source"); err != nil {
			b.Fatal(err)
		}
		m.Detach("conn-00000", "rule1/source")
	}
	b.StopTimer()
	close(stop)
	<-done
}
