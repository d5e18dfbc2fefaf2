// Package httpserver shares one HTTP listener per address among the
// connections of a process that serve on it (httppush endpoints,
// WebSocket server paths, and those of any connector type that receives
// over HTTP), as eKuiper shares its HTTP server. Routes are added and
// removed by path and method; the listener closes with its last holder.
//
// A connector checks the address against connector.Policy.ListenAllowed
// first, then calls Acquire in Connect, Handle for each route, Remove and
// Release in Close. The listener has read, write and idle timeouts.
package httpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// ErrInUse is returned when another program holds the address.
var ErrInUse = errors.New("address in use")

var (
	mu      sync.Mutex
	servers = map[string]*Server{}
)

// Server is a shared listener.
type Server struct {
	key  string
	tls  bool
	ln   net.Listener
	srv  *http.Server
	done chan struct{}

	mu     sync.Mutex
	holds  int
	routes map[string]map[string]http.Handler // path -> method -> handler
}

// Acquire returns the listener on addr, starting it if this process does
// not serve addr yet. An address with port 0 always gets a new listener.
// Each Acquire needs one Release.
func Acquire(addr string, tc *tls.Config) (*Server, error) {
	mu.Lock()
	defer mu.Unlock()
	if s := servers[addr]; s != nil {
		if s.tls != (tc != nil) {
			return nil, fmt.Errorf("%s is served already, %s TLS, by another connection of this program", addr, map[bool]string{true: "with", false: "without"}[s.tls])
		}
		s.mu.Lock()
		s.holds++
		s.mu.Unlock()
		return s, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%w: another program listens on %s; pick another addr", ErrInUse, addr)
		}
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	s := &Server{key: addr, tls: tc != nil, ln: ln, done: make(chan struct{}), holds: 1, routes: map[string]map[string]http.Handler{}}
	// A peer cannot hold a connection open for nothing: bounded reads,
	// writes (a push waits for its receivers within it) and idleness. A
	// WebSocket, once upgraded, is free of them.
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute, IdleTimeout: time.Minute}
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	if _, port, _ := net.SplitHostPort(addr); port != "0" {
		servers[addr] = s
	}
	return s, nil
}

// Serves reports whether this process serves addr.
func Serves(addr string) bool {
	mu.Lock()
	defer mu.Unlock()
	return servers[addr] != nil
}

// Addr is the address the listener is bound to.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Handle routes method requests for path to h. A path and method that are
// routed already are an error.
func (s *Server) Handle(path, method string, h http.Handler) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.routes[path]
	if ms == nil {
		ms = map[string]http.Handler{}
		s.routes[path] = ms
	}
	if _, ok := ms[method]; ok {
		return fmt.Errorf("%s %s is served already by another connection on %s", method, path, s.key)
	}
	ms[method] = h
	return nil
}

// Remove drops the route of path and method.
func (s *Server) Remove(path, method string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.routes[path], method)
	if len(s.routes[path]) == 0 {
		delete(s.routes, path)
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ms := s.routes[r.URL.Path]
	h := ms[r.Method]
	if h == nil && r.Method == http.MethodGet {
		h = ms[""] // a route for any method, such as a WebSocket upgrade
	}
	s.mu.Unlock()
	switch {
	case h != nil:
		h.ServeHTTP(w, r)
	case len(ms) > 0:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	default:
		http.NotFound(w, r)
	}
}

// Release gives up one hold; the last closes the listener and waits for it.
func (s *Server) Release() {
	mu.Lock()
	s.mu.Lock()
	s.holds--
	last := s.holds == 0
	s.mu.Unlock()
	if last && servers[s.key] == s {
		delete(servers, s.key)
	}
	mu.Unlock()
	if !last {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	<-s.done
}
