package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestGuardHosts: on loopback only IP addresses, localhost and the
// allowed names pass; elsewhere any name does, unless names are allowed.
func TestGuardHosts(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	loop := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9081}
	lan := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 9081}
	for _, c := range []struct {
		listen  net.Addr
		allowed []string
		host    string
		want    int
	}{
		{loop, nil, "127.0.0.1:9081", 200},
		{loop, nil, "10.0.0.5", 200},
		{loop, nil, "localhost:9081", 200},
		{loop, nil, "evil.example:9081", 403},
		{loop, []string{"Edge.Test"}, "edge.test.:9081", 200},
		{lan, nil, "edge.test:9081", 200},
		{lan, []string{"edge.test"}, "edge.test:9081", 200},
		{lan, []string{"edge.test"}, "evil.example", 403},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/connections", nil)
		req.Host = c.host
		guardHosts(ok, c.listen, c.allowed).ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("listening on %v, allowing %v: Host %q got %d, want %d", c.listen, c.allowed, c.host, rec.Code, c.want)
		}
	}
}
