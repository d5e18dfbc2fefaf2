package httpapi_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// BenchmarkListHTTP is GET /connections of 301 and of 10,000 connections
// (fake, each with a secret, a masked map and a plain prop), over
// loopback, with a kept-alive client: as an operator's tool would poll.
func BenchmarkListHTTP(b *testing.B) {
	for _, n := range []int{301, 10000} {
		b.Run(fmt.Sprintf("of%d", n), func(b *testing.B) {
			benchGet(b, n, "/connections")
		})
	}
}

// BenchmarkGetHTTP is GET /connections/{id} of one of 301 connections.
func BenchmarkGetHTTP(b *testing.B) { benchGet(b, 301, "/connections/conn-00150") }

func benchGet(b *testing.B, n int, path string) {
	reg := &registry.Registry{}
	reg.Register("fake", connectortest.NewFake())
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for i := range n {
		if _, err := m.Create(context.Background(), connection.Spec{ID: fmt.Sprintf("conn-%05d", i), Type: "fake",
			Props: map[string]any{"addr": "p", "password": "pw", "header": map[string]any{"Authorization": "x", "A": "b"}}}); err != nil {
			b.Fatal(err)
		}
	}
	srv := httptest.NewServer(httpapi.New(m, &httpapi.Options{MaxPageSize: n}))
	defer srv.Close()
	c := srv.Client()
	for b.Loop() {
		res, err := c.Get(srv.URL + path)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatal(res.Status)
		}
	}
}

// BenchmarkStatusToSSE is the time from a link's loss (the connector's
// Lost) to the status event on a GET /events client over loopback, with
// 300 other connections on the Manager. It reports p50 and p99.
func BenchmarkStatusToSSE(b *testing.B) {
	fake := connectortest.NewFake()
	fake.SetUp("p", true)
	reg := &registry.Registry{}
	reg.Register("fake", fake)
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler),
		MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	for i := range 301 {
		if _, err := m.Create(ctx, connection.Spec{ID: fmt.Sprintf("c%03d", i), Type: "fake", Props: map[string]any{"addr": "p"}}); err != nil {
			b.Fatal(err)
		}
	}
	if err := m.WaitConnected(ctx, "c150"); err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(httpapi.New(m, nil))
	defer ts.Close()
	res, err := http.Get(ts.URL + "/events?connection=c150")
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	rd := bufio.NewReader(res.Body)
	// waitStatus reads up to the data line of a status event with state.
	waitStatus := func(state string) {
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			if strings.HasPrefix(line, "data: ") && strings.Contains(line, `"kind":"status"`) && strings.Contains(line, `"status":"`+state+`"`) {
				return
			}
		}
	}
	cl, err := m.Attach(ctx, "c150", "bench")
	if err != nil {
		b.Fatal(err)
	}
	conn := cl.(*connectortest.FakeClient).Conn()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		conn.Lose(errors.New("bench"))
		waitStatus("disconnected")
		lat = append(lat, time.Since(start))
		waitStatus("connected")
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
