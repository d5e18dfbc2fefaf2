package mqtt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/internal/hostiletest"
	"github.com/connkit/connkit/registry"
)

// hugeConnack is a CONNACK's fixed header claiming 268,435,455 bytes, the
// most MQTT's remaining length can say: paho makes a buffer of what it
// claims before reading it.
var hugeConnack = []byte{0x20, 0xff, 0xff, 0xff, 0x7f}

// hostileTCP is a broker that reads the CONNECT and answers hugeConnack.
func hostileTCP(t *testing.T) (string, func() int) {
	p := hostiletest.Listen(t, func(c net.Conn) {
		if _, err := packets.ReadPacket(c); err != nil {
			return
		}
		c.Write(hugeConnack)
		hostiletest.Hold(c)
	})
	return "tcp://" + p.Addr(), p.Accepted
}

// hostileWS is the same broker over WebSocket.
func hostileWS(t *testing.T) (string, func() int) {
	var accepted atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accepted.Add(1)
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"mqtt"}})
		if err != nil {
			return
		}
		nc := websocket.NetConn(r.Context(), c, websocket.MessageBinary)
		defer nc.Close()
		if _, err := packets.ReadPacket(nc); err != nil {
			return
		}
		nc.Write(hugeConnack)
		hostiletest.Hold(nc)
	}))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	return "ws://" + strings.TrimPrefix(srv.URL, "http://") + "/mqtt", func() int { return int(accepted.Load()) }
}

// TestHostileBrokerBudget: a broker that answers CONNECT with a header
// claiming 256 MiB, over TCP and over WebSocket, costs a dial far less
// than 1 MiB, by a check and by the Manager's Connect, and the error names
// the handshake budget.
func TestHostileBrokerBudget(t *testing.T) {
	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	for name, start := range map[string]func(*testing.T) (string, func() int){"tcp": hostileTCP, "websocket": hostileWS} {
		t.Run(name, func(t *testing.T) {
			server, accepted := start(t)
			props := map[string]any{"server": server}
			ch := check.New(&check.Options{Registry: reg, Timeout: 3 * time.Second})
			var err error
			n := hostiletest.Allocated(func() { _, err = ch.Sink(ctx, check.Request{Type: Type, Props: props}) })
			t.Logf("a check allocated %d bytes: %v", n, err)
			if err == nil || !strings.Contains(err.Error(), "HandshakeBudget") {
				t.Errorf("check: %v, want an error naming the handshake budget", err)
			}
			if n > hostiletest.Budget {
				t.Errorf("a check of the hostile broker allocated %d bytes, over %d", n, hostiletest.Budget)
			}

			m := newManager(t, nil)
			before := accepted()
			n = hostiletest.Allocated(func() {
				if _, err := m.Create(ctx, connection.Spec{ID: "hostile", Type: Type, Props: props}); err != nil {
					t.Fatal(err)
				}
				connectortest.Eventually(t, "an error naming the handshake budget", func() bool {
					in, _ := m.Get("hostile")
					return strings.Contains(in.Err, "HandshakeBudget") && accepted() > before
				})
			})
			dials := uint64(accepted() - before)
			t.Logf("the Manager's %d dials allocated %d bytes, %d each", dials, n, n/dials)
			if n/dials > hostiletest.Budget {
				t.Errorf("a dial of the hostile broker allocated %d bytes, over %d", n/dials, hostiletest.Budget)
			}
		})
	}
}

// TestMaxMessageBytes: against mosquitto, a packet of exactly
// maxMessageBytes arrives; one byte more closes the session with an error
// naming maxMessageBytes, and the Manager dials again, with the
// subscription back.
func TestMaxMessageBytes(t *testing.T) {
	addr := connectortest.Env(t, "CONNKIT_MQTT_ADDR")
	const limit = 1000
	m := newManager(t, nil)
	create(t, m, "bus", map[string]any{"server": "tcp://" + addr, "maxMessageBytes": limit})
	c := attach(t, m, "bus", "r")
	topic := randomID("limit/")
	var in inbox
	wait(t, c.Subscribe(topic, 0, in.handler))
	pub := bare(t, addr)
	// A QoS 0 PUBLISH: the topic's length, the topic, the payload.
	at := strings.Repeat("a", limit-2-len(topic))
	wait(t, pub.Publish(topic, 0, false, at))
	waitFor(t, "the message at the limit", 5*time.Second, func() bool { return in.has(at) })
	before, _ := m.Get("bus")

	over := strings.Repeat("b", limit-2-len(topic)+1)
	wait(t, pub.Publish(topic, 0, false, over))
	connectortest.Eventually(t, "the session closed, naming maxMessageBytes", func() bool {
		h, _ := m.History("bus")
		for _, s := range h {
			if strings.Contains(s.Err, fmt.Sprintf("over maxMessageBytes (%d)", limit)) {
				return true
			}
		}
		return false
	})
	after := connectortest.WaitState(t, m, "bus", connection.StateConnected, 10*time.Second)
	if !after.Since.After(before.Since) {
		t.Errorf("the session was not dialed again: %+v", after.Status)
	}
	if in.has(over) {
		t.Error("the message over the limit was delivered")
	}
	// The subscription is back: a message at the limit arrives again.
	again := strings.Repeat("c", limit-2-len(topic))
	waitFor(t, "a message after the redial", 10*time.Second, func() bool {
		pub.Publish(topic, 0, false, again).Wait()
		return in.has(again)
	})
	m.Detach("bus", "r")
}

// TestWebSocketRedirect: a broker's WebSocket endpoint that answers 302
// to another listener: the dial fails naming 302 and that host alone (not
// its path or query), and the other listener receives nothing: no
// CONNECT, no password.
func TestWebSocketRedirect(t *testing.T) {
	other := connectortest.NewCapture(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "ws://"+other.Addr()+"/mqtt?token=redirect-T0ken", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	props := map[string]any{"server": "ws://" + strings.TrimPrefix(srv.URL, "http://") + "/mqtt", "username": "u", "password": "ws-Secret-pw"}
	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	_, err := check.New(&check.Options{Registry: reg, Timeout: 3 * time.Second}).Sink(ctx, check.Request{Type: Type, Props: props})
	m := newManager(t, nil)
	if _, cerr := m.Create(ctx, connection.Spec{ID: "ws", Type: Type, Props: props}); cerr != nil {
		t.Fatal(cerr)
	}
	in := connectortest.WaitState(t, m, "ws", connection.StateDisconnected, 10*time.Second)
	t.Logf("check: %v; connection: %s", err, in.Err)
	for name, msg := range map[string]string{"check": fmt.Sprint(err), "connection": in.Err} {
		// A status names the props it quotes (the other host shares
		// 127.0.0.1 with the connection's own): its port is enough.
		_, port, _ := net.SplitHostPort(other.Addr())
		named := strings.Contains(msg, other.Addr()) || name == "connection" && strings.Contains(msg, port)
		if !strings.Contains(msg, "302") || !named || strings.Contains(msg, "redirect-T0ken") {
			t.Errorf("%s: %q, want 302 and %s named, and no token", name, msg, other.Addr())
		}
	}
	m.Close()
	if other.Accepts() != 0 || len(other.Received()) != 0 {
		t.Errorf("the redirect's target was reached: %d connections, %q", other.Accepts(), other.Received())
	}
}

// TestHostileWebSocketNoCloseWait: a WebSocket broker refused by the
// guard that then reads nothing more (it never answers the close
// handshake) does not hold the dial: the check says why it refused, not
// that time ran out.
func TestHostileWebSocketNoCloseWait(t *testing.T) {
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"mqtt"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		nc := websocket.NetConn(r.Context(), c, websocket.MessageBinary)
		if _, err := packets.ReadPacket(nc); err != nil {
			return
		}
		nc.Write(hugeConnack)
		<-done // reads nothing: a close frame is never answered
	}))
	t.Cleanup(func() { close(done); srv.CloseClientConnections(); srv.Close() })
	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	_, err := check.New(&check.Options{Registry: reg, Timeout: 3 * time.Second}).Sink(context.Background(),
		check.Request{Type: Type, Props: map[string]any{"server": "ws://" + strings.TrimPrefix(srv.URL, "http://") + "/mqtt"}})
	var ce *check.Error
	if !errors.As(err, &ce) || ce.Reason == "timeout" || !strings.Contains(err.Error(), "HandshakeBudget") {
		t.Errorf("check: %v, want the refusal, at once", err)
	}
}
