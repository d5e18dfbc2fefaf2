package websocket_test

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/websocket"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

const token = "Bearer s3cr3t-T0ken"

// peer is a real WebSocket server on ln: it wants the token, echoes every
// message back, and can drop every link it holds.
type peer struct {
	srv   *http.Server
	mu    sync.Mutex
	links map[*ws.Conn]struct{}
	got   chan string
}

func startPeer(t *testing.T, ln net.Listener) *peer {
	p := &peer{links: map[*ws.Conn]struct{}{}, got: make(chan string, 100)}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		c, err := ws.Accept(w, r, nil)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.links[c] = struct{}{}
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			delete(p.links, c)
			p.mu.Unlock()
			c.CloseNow()
		}()
		for {
			typ, data, err := c.Read(r.Context())
			if err != nil {
				return
			}
			select {
			case p.got <- string(data):
			default:
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo:"), data...)); err != nil {
				return
			}
		}
	})}
	go p.srv.Serve(ln)
	t.Cleanup(func() {
		p.dropAll()
		p.srv.Close()
	})
	return p
}

func (p *peer) dropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.links {
		c.CloseNow()
	}
}

func listen(t *testing.T, addr string) net.Listener {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func props(addr string) map[string]any {
	return map[string]any{"addr": addr, "path": "/ws", "requestHeader": map[string]any{"Authorization": token}}
}

func newManager(t *testing.T) *connection.Manager {
	reg := &registry.Registry{}
	reg.Register(websocket.Type, websocket.Connector{})
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{
		Registry: reg, Logger: slog.New(slog.DiscardHandler), MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		DialTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func next(t *testing.T, ch <-chan []byte) string {
	t.Helper()
	select {
	case b := <-ch:
		return string(b)
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
		return ""
	}
}

// TestClientRedials: the peer drops the link; the connection dials again
// and messages flow both ways once more.
func TestClientRedials(t *testing.T) {
	ctx := context.Background()
	ln := listen(t, "127.0.0.1:0")
	p := startPeer(t, ln)
	m := newManager(t)
	if _, err := m.Create(ctx, connection.Spec{ID: "ws", Type: websocket.Type, Props: props(ln.Addr().String())}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "ws", connection.StateConnected, 5*time.Second)
	sink, err := websocket.ClientOf(m.Attach(ctx, "ws", "rule1/sink"))
	if err != nil {
		t.Fatal(err)
	}
	src, _ := websocket.ClientOf(m.Attach(ctx, "ws", "rule2/source"))
	in := src.Receive()
	if err := sink.Write(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if got := next(t, in); got != "echo:one" {
		t.Errorf("source got %q", got)
	}
	// The redial may be over before a poll could see "disconnected": the
	// proof is a connected status that changed after the drop.
	before, _ := m.Get("ws")
	p.dropAll()
	deadline := time.Now().Add(5 * time.Second)
	for in, _ := m.Get("ws"); in.State != connection.StateConnected || !in.Since.After(before.Since); in, _ = m.Get("ws") {
		if time.Now().After(deadline) {
			t.Fatalf("no redial after the drop: %+v", in.Status)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := sink.Write(ctx, []byte("two")); err != nil {
		t.Fatalf("write after the redial: %v", err)
	}
	if got := next(t, in); got != "echo:two" {
		t.Errorf("after the redial the source got %q", got)
	}
	// A released Client is done: its Write fails at once, its channel
	// gets nothing more, while the other Client works on.
	m.Detach("ws", "rule2/source")
	if err := src.Write(ctx, []byte("x")); !errors.Is(err, connector.ErrDetached) {
		t.Errorf("Write after release: %v, want ErrDetached", err)
	}
	if _, open := <-src.Receive(); open {
		t.Error("Receive after release gave a live channel")
	}
	mine, err := websocket.Attach(ctx, m, "ws", "rule3/source")
	if err != nil {
		t.Fatal(err)
	}
	in3 := mine.Receive()
	if err := sink.Write(ctx, []byte("three")); err != nil {
		t.Fatal(err)
	}
	if got := next(t, in3); got != "echo:three" {
		t.Errorf("the new source got %q", got)
	}
	select {
	case got := <-in:
		t.Errorf("a released Client received %q", got)
	default:
	}
	m.Detach("ws", "rule1/sink")
	m.Detach("ws", "rule3/source")
}

// TestServerMode: real clients connect to the served path.
func TestServerMode(t *testing.T) {
	ctx := context.Background()
	free := listen(t, "127.0.0.1:0")
	addr := free.Addr().String()
	free.Close()
	m := newManager(t)
	if _, err := m.Create(ctx, connection.Spec{ID: "wss", Type: websocket.Type, Props: map[string]any{"listenAddr": addr, "path": "/feed"}}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "wss", connection.StateConnected, 5*time.Second)
	srv, err := websocket.ClientOf(m.Attach(ctx, "wss", "rule1/source"))
	if err != nil {
		t.Fatal(err)
	}
	in := srv.Receive()
	var peers []*ws.Conn
	for range 2 {
		c, _, err := ws.Dial(ctx, "ws://"+addr+"/feed", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		peers = append(peers, c)
	}
	if err := peers[0].Write(ctx, ws.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if got := next(t, in); got != "hello" {
		t.Errorf("server got %q", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.Peers() != 2 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if err := srv.Write(ctx, []byte("to all")); err != nil {
		t.Fatal(err)
	}
	for i, p := range peers {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, data, err := p.Read(rctx)
		cancel()
		if err != nil || string(data) != "to all" {
			t.Errorf("peer %d got %q %v", i, data, err)
		}
	}
	m.Detach("wss", "rule1/source")
	if err := m.Delete(ctx, "wss", connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	// The path is gone with the connection.
	if _, _, err := ws.Dial(ctx, "ws://"+addr+"/feed", nil); err == nil {
		t.Error("the path is still served after Delete")
	}
}

// TestWSS dials a real TLS peer, verified through rootCaPath.
func TestWSS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := ws.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		typ, data, err := c.Read(r.Context())
		if err == nil {
			c.Write(r.Context(), typ, data)
		}
		c.Read(r.Context())
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(srv.URL, "https://")
	ctx := context.Background()
	m := newManager(t)
	// Without the CA the certificate is not trusted.
	if _, err := m.Create(ctx, connection.Spec{ID: "untrusted", Type: websocket.Type, Props: map[string]any{"addr": addr, "scheme": "wss"}}); err != nil {
		t.Fatal(err)
	}
	in := connectortest.WaitState(t, m, "untrusted", connection.StateDisconnected, 5*time.Second)
	if !strings.Contains(in.Err, "certificate") {
		t.Errorf("untrusted peer: %q", in.Err)
	}
	if _, err := m.Create(ctx, connection.Spec{ID: "wss", Type: websocket.Type, Props: map[string]any{"addr": addr, "scheme": "wss", "rootCaPath": ca}}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "wss", connection.StateConnected, 5*time.Second)
	c, _ := websocket.ClientOf(m.Attach(ctx, "wss", "r"))
	rx := c.Receive()
	if err := c.Write(ctx, []byte("secure")); err != nil {
		t.Fatal(err)
	}
	if got := next(t, rx); got != "secure" {
		t.Errorf("over wss: %q", got)
	}
	m.Detach("wss", "r")
}

// TestLastActivity: a message written, and one read, each mark the
// connection active, in client and in server mode.
func TestLastActivity(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name         string
		server, read bool
	}{{"client/write", false, false}, {"client/read", false, true}, {"server/write", true, false}, {"server/read", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(t)
			var pc *ws.Conn // the peer's end of the link
			if tc.server {
				free := listen(t, "127.0.0.1:0")
				addr := free.Addr().String()
				free.Close()
				if _, err := m.Create(ctx, connection.Spec{ID: "ws", Type: websocket.Type, Props: map[string]any{"listenAddr": addr, "path": "/feed"}}); err != nil {
					t.Fatal(err)
				}
				connectortest.WaitState(t, m, "ws", connection.StateConnected, 5*time.Second)
				c, _, err := ws.Dial(ctx, "ws://"+addr+"/feed", nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.CloseNow() })
				pc = c
			} else {
				// A peer that hands its end of the link to the test.
				links, done := make(chan *ws.Conn, 1), make(chan struct{})
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					c, err := ws.Accept(w, r, nil)
					if err != nil {
						return
					}
					defer c.CloseNow()
					links <- c
					<-done
				}))
				t.Cleanup(srv.Close)
				t.Cleanup(func() { close(done) })
				if _, err := m.Create(ctx, connection.Spec{ID: "ws", Type: websocket.Type, Props: map[string]any{"addr": srv.Listener.Addr().String()}}); err != nil {
					t.Fatal(err)
				}
				connectortest.WaitState(t, m, "ws", connection.StateConnected, 5*time.Second)
				pc = <-links
			}
			cl, err := websocket.Attach(ctx, m, "ws", "rule1")
			if err != nil {
				t.Fatal(err)
			}
			in := cl.Receive()
			deadline := time.Now().Add(5 * time.Second)
			for cl.Peers() != 1 && time.Now().Before(deadline) {
				time.Sleep(2 * time.Millisecond)
			}
			if info, _ := m.Get("ws"); !info.LastActivityAt.IsZero() {
				t.Fatalf("LastActivityAt %v before any message", info.LastActivityAt)
			}
			if tc.read {
				if err := pc.Write(ctx, ws.MessageText, []byte("to connkit")); err != nil {
					t.Fatal(err)
				}
				if got := next(t, in); got != "to connkit" {
					t.Fatalf("got %q", got)
				}
			} else {
				if err := cl.Write(ctx, []byte("to peer")); err != nil {
					t.Fatal(err)
				}
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, data, err := pc.Read(rctx)
				cancel()
				if err != nil || string(data) != "to peer" {
					t.Fatalf("peer got %q %v", data, err)
				}
			}
			connectortest.WaitActive(t, m, "ws")
		})
	}
}

// TestReconnectReplacesLink: a Reconnect closes the old link before the
// new one: the peer holds one link, never a pile of them.
func TestReconnectReplacesLink(t *testing.T) {
	ctx := context.Background()
	ln := listen(t, "127.0.0.1:0")
	p := startPeer(t, ln)
	m := newManager(t)
	if _, err := m.Create(ctx, connection.Spec{ID: "ws", Type: websocket.Type, Props: props(ln.Addr().String())}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "ws", connection.StateConnected, 5*time.Second)
	links := func() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.links) }
	for range 3 {
		before, _ := m.Get("ws")
		if err := m.Reconnect(ctx, "ws"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			in, _ := m.Get("ws")
			if in.State == connection.StateConnected && in.Since.After(before.Since) && links() == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after a reconnect: %+v, the peer holds %d links, want 1", in.Status, links())
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}
