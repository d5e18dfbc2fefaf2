package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

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
