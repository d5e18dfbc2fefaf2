package websocket_test

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/internal/hostiletest"
	"github.com/connkit/connkit/connector/websocket"
	"github.com/connkit/connkit/registry"
)

// rawPeer answers the handshake of every connection itself, with the
// status line and headers head, then hands the socket to after.
func rawPeer(t *testing.T, head func(c net.Conn, accept string) error, after func(net.Conn)) *hostiletest.Peer {
	return hostiletest.Listen(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		if head(c, base64.StdEncoding.EncodeToString(h[:])) != nil {
			return
		}
		after(c)
	})
}

func accept101(c net.Conn, accept string) error {
	_, err := fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept)
	return err
}

func checker() *check.Checker {
	reg := &registry.Registry{}
	reg.Register(websocket.Type, websocket.Connector{})
	return check.New(&check.Options{Registry: reg, Timeout: 3 * time.Second})
}

// TestHostileFrame: a peer that accepts, then sends a frame claiming 2^40
// bytes and streams its payload: the link closes at once with an error
// naming maxMessageBytes, before the payload costs anything, and the
// Manager dials again.
func TestHostileFrame(t *testing.T) {
	p := rawPeer(t, accept101, func(c net.Conn) {
		hdr := binary.BigEndian.AppendUint64([]byte{0x82, 127}, 1<<40)
		if _, err := c.Write(hdr); err != nil {
			return
		}
		chunk := make([]byte, 32<<10)
		for range 64 { // 2 MiB, twice the limit
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		hostiletest.Hold(c)
	})
	// A check makes the handshake alone, then leaves: it passes, and the
	// frame costs it nothing either.
	var err error
	start := time.Now()
	n := hostiletest.Allocated(func() { _, err = checker().Sink(context.Background(), props2req(map[string]any{"addr": p.Addr()})) })
	t.Logf("a check allocated %d bytes in %v: %v", n, time.Since(start).Round(time.Millisecond), err)
	if err != nil || n > hostiletest.Budget {
		t.Errorf("check: %v, %d bytes", err, n)
	}
	m := newManager(t)
	before, after := p.Accepted(), 0
	n = hostiletest.Allocated(func() {
		defer func() { after = p.Accepted() }()
		if _, err := m.Create(context.Background(), connection.Spec{ID: "ws", Type: websocket.Type, Props: map[string]any{"addr": p.Addr()}}); err != nil {
			t.Fatal(err)
		}
		connectortest.Eventually(t, "the link closed, naming maxMessageBytes", func() bool {
			h, _ := m.History("ws")
			for _, s := range h {
				if strings.Contains(s.Err, "1099511627776-byte WebSocket frame, over maxMessageBytes (1048576)") {
					return true
				}
			}
			return false
		})
	})
	connectortest.Eventually(t, "a dial again", func() bool { return p.Accepted() > after })
	dials := uint64(after - before)
	t.Logf("%d dials allocated %d bytes, %d each", dials, n, n/dials)
	if n/dials > hostiletest.Budget {
		t.Errorf("a dial allocated %d bytes, over %d", n/dials, hostiletest.Budget)
	}
}

// TestHostileHeaders: a peer that answers the handshake with megabytes of
// headers costs a dial no more than the bounded head, by a check and by
// the Manager.
func TestHostileHeaders(t *testing.T) {
	p := rawPeer(t, func(c net.Conn, accept string) error {
		if _, err := fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: %s\r\n", accept); err != nil {
			return err
		}
		line := []byte("X-Pad: " + strings.Repeat("p", 1000) + "\r\n")
		for range 4 << 10 { // 4 MiB
			if _, err := c.Write(line); err != nil {
				return err
			}
		}
		_, err := c.Write([]byte("\r\n"))
		return err
	}, hostiletest.Hold)
	props := map[string]any{"addr": p.Addr()}
	var err error
	n := hostiletest.Allocated(func() { _, err = checker().Sink(context.Background(), props2req(props)) })
	t.Logf("a check allocated %d bytes: %v", n, err)
	if err == nil || !strings.Contains(err.Error(), "header") {
		t.Errorf("check: %v, want the headers refused", err)
	}
	if n > hostiletest.Budget {
		t.Errorf("a check allocated %d bytes, over %d", n, hostiletest.Budget)
	}
	m := newManager(t)
	before := p.Accepted()
	n = hostiletest.Allocated(func() {
		if _, err := m.Create(context.Background(), connection.Spec{ID: "ws", Type: websocket.Type, Props: props}); err != nil {
			t.Fatal(err)
		}
		connectortest.Eventually(t, "the headers refused", func() bool {
			in, _ := m.Get("ws")
			return strings.Contains(in.Err, "header") && p.Accepted() > before
		})
	})
	dials := uint64(p.Accepted() - before)
	t.Logf("the Manager's %d dials allocated %d bytes, %d each", dials, n, n/dials)
	if n/dials > hostiletest.Budget {
		t.Errorf("a dial allocated %d bytes, over %d", n/dials, hostiletest.Budget)
	}
}

func props2req(p map[string]any) check.Request { return check.Request{Type: websocket.Type, Props: p} }

// TestMessageLimit: a message of exactly maxMessageBytes arrives; one in
// one frame of a byte more, or in frames that together are, closes the
// link naming maxMessageBytes, and the Manager dials again.
func TestMessageLimit(t *testing.T) {
	const limit = 1500
	links := make(chan *ws.Conn, 8)
	var held []*ws.Conn
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := ws.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.CloseRead(context.Background())
		links <- c
	}))
	t.Cleanup(func() {
		srv.Close()
		for _, c := range held {
			c.CloseNow()
		}
	})
	link := func() *ws.Conn {
		select {
		case c := <-links:
			held = append(held, c)
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no link")
			return nil
		}
	}
	m := newManager(t)
	if _, err := m.Create(context.Background(), connection.Spec{ID: "ws", Type: websocket.Type,
		Props: map[string]any{"addr": strings.TrimPrefix(srv.URL, "http://"), "maxMessageBytes": limit}}); err != nil {
		t.Fatal(err)
	}
	c, err := websocket.Attach(context.Background(), m, "ws", "r")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Detach("ws", "r")
	in := c.Receive()
	at := strings.Repeat("a", limit)
	ctx := context.Background()
	cur := link()
	if err := cur.Write(ctx, ws.MessageText, []byte(at)); err != nil {
		t.Fatal(err)
	}
	if got := next(t, in); got != at {
		t.Fatalf("got %d bytes, want the %d at the limit", len(got), limit)
	}
	closed := func(what string, n int) {
		connectortest.Eventually(t, what+": the link closed, naming maxMessageBytes", func() bool {
			h, _ := m.History("ws")
			k := 0
			for _, s := range h {
				if strings.Contains(s.Err, fmt.Sprintf("over maxMessageBytes (%d)", limit)) {
					k++
				}
			}
			return k >= n
		})
	}
	cur.Write(ctx, ws.MessageText, []byte(at+"b")) // one frame, a byte over
	closed("one frame", 1)
	w, err := link().Writer(ctx, ws.MessageText) // after the redial
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // three frames under the limit, together over it
		w.Write([]byte(at[:limit/2]))
	}
	w.Close()
	closed("three frames", 2)
	connectortest.WaitState(t, m, "ws", connection.StateConnected, 5*time.Second)
	if err := link().Write(ctx, ws.MessageText, []byte(at)); err != nil {
		t.Fatal(err)
	}
	if got := next(t, in); got != at {
		t.Fatalf("after the redials: got %d bytes, want the %d at the limit", len(got), limit)
	}
}

// TestRedirect: a peer that answers the handshake with 302 to another
// listener: the handshake fails naming 302 and that host alone (never its
// path or query), and the secret header reaches nothing there.
func TestRedirect(t *testing.T) {
	other := connectortest.NewCapture(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "ws://"+other.Addr()+"/in?token=redirect-T0ken", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	props := map[string]any{"addr": strings.TrimPrefix(srv.URL, "http://"), "requestHeader": map[string]any{"X-Api-Key": "api-K3y-secret"}}
	_, err := checker().Sink(context.Background(), props2req(props))
	m := newManager(t)
	if _, cerr := m.Create(context.Background(), connection.Spec{ID: "ws", Type: websocket.Type, Props: props}); cerr != nil {
		t.Fatal(cerr)
	}
	in := connectortest.WaitState(t, m, "ws", connection.StateDisconnected, 5*time.Second)
	t.Logf("check: %v; connection: %s", err, in.Err)
	for name, msg := range map[string]string{"check": fmt.Sprint(err), "connection": in.Err} {
		// A status names the props it quotes (the other host shares
		// 127.0.0.1 with the connection's own): its port is enough.
		_, port, _ := net.SplitHostPort(other.Addr())
		named := strings.Contains(msg, other.Addr()) || name == "connection" && strings.Contains(msg, port)
		if !strings.Contains(msg, "302") || !named || strings.Contains(msg, "redirect-T0ken") || strings.Contains(msg, "/in") {
			t.Errorf("%s: %q, want 302 and %s named, and no path or token", name, msg, other.Addr())
		}
	}
	m.Close()
	if other.Accepts() != 0 || strings.Contains(string(other.Received()), "api-K3y") {
		t.Errorf("the redirect's target was reached: %d connections, %q", other.Accepts(), other.Received())
	}
}
