package edgex

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/edgexfoundry/go-mod-messaging/v3/pkg/types"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/internal/hostiletest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// fakeBroker is enough of an MQTT 3.1.1 broker for one client per
// connection: CONNACK, SUBACK, UNSUBACK, PINGRESP, and a QoS 0 PUBLISH
// back to the same connection when it subscribed to the topic.
func fakeBroker(t *testing.T) string {
	return hostiletest.Listen(t, func(c net.Conn) {
		subs := map[string]bool{}
		for {
			pkt, err := packets.ReadPacket(c)
			if err != nil {
				return
			}
			var out packets.ControlPacket
			switch p := pkt.(type) {
			case *packets.ConnectPacket:
				out = packets.NewControlPacket(packets.Connack)
			case *packets.SubscribePacket:
				ack := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
				ack.MessageID = p.MessageID
				for i, topic := range p.Topics {
					subs[topic] = true
					ack.ReturnCodes = append(ack.ReturnCodes, p.Qoss[i])
				}
				out = ack
			case *packets.UnsubscribePacket:
				ack := packets.NewControlPacket(packets.Unsuback).(*packets.UnsubackPacket)
				ack.MessageID = p.MessageID
				out = ack
			case *packets.PublishPacket:
				if subs[p.TopicName] {
					back := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
					back.TopicName, back.Payload = p.TopicName, p.Payload
					out = back
				}
				if p.Qos == 1 {
					ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
					ack.MessageID = p.MessageID
					if ack.Write(c) != nil {
						return
					}
				}
			case *packets.PingreqPacket:
				out = packets.NewControlPacket(packets.Pingresp)
			case *packets.DisconnectPacket:
				return
			}
			if out != nil && out.Write(c) != nil {
				return
			}
		}
	}).Addr()
}

// broker is mosquitto when CONNKIT_MQTT_ADDR is set, else the fake.
func broker(t *testing.T) string {
	if addr := os.Getenv("CONNKIT_MQTT_ADDR"); addr != "" {
		return addr
	}
	return fakeBroker(t)
}

func managerWith(t *testing.T, p *connector.Policy) *connection.Manager {
	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{
		Registry: reg, Logger: slog.New(slog.DiscardHandler), MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		DialTimeout: 3 * time.Second, HealthInterval: 100 * time.Millisecond, Policy: p,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestEverySocketThroughThePolicy: every connection the broker accepts,
// for Connect, the bus's traffic, health pings and checks, is one the
// dial policy observed; under a policy that denies loopback, nothing
// reaches the broker at all (no CONNECT, no password).
func TestEverySocketThroughThePolicy(t *testing.T) {
	proxy := connectortest.NewProxy(t, broker(t))
	host, port := split(t, proxy.Addr())
	props := map[string]any{"server": host, "port": port, "optional": map[string]any{"Username": "u", "Password": "edgex-Policy-pw"}}
	var seen atomic.Int64
	ap := netip.MustParseAddrPort(proxy.Addr())
	observe := &connector.DialPolicy{Allow: []netip.Prefix{netip.PrefixFrom(ap.Addr(), 32)}, Observe: func(netip.AddrPort) { seen.Add(1) }}
	m := managerWith(t, &connector.Policy{Dial: observe})
	if _, err := m.Create(context.Background(), connection.Spec{ID: "bus", Type: Type, Props: props}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "bus", connection.StateConnected, 10*time.Second)
	c, err := Attach(context.Background(), m, "bus", "r")
	if err != nil {
		t.Fatal(err)
	}
	topic := "edgex/policy/" + randomID("")
	msgs, errs := make(chan types.MessageEnvelope, 4), make(chan error, 4)
	if err := c.Subscribe([]types.TopicChannel{{Topic: topic, Messages: msgs}}, errs); err != nil {
		t.Fatal(err)
	}
	env := types.NewMessageEnvelopeForRequest([]byte(`{"v":1}`), nil)
	if err := c.Publish(env, topic); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-msgs:
		if got.CorrelationID != env.CorrelationID || got.ReceivedTopic != topic {
			t.Errorf("got %+v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	if _, err := check.New(&check.Options{Registry: reg, DialPolicy: observe}).Sink(context.Background(), check.Request{Type: Type, Props: props}); err != nil {
		t.Errorf("check: %v", err)
	}
	// A few health intervals, for pings.
	connectortest.Eventually(t, "health pings", func() bool { return seen.Load() >= 5 })
	m.Detach("bus", "r")
	m.Close()
	if a, s := int64(proxy.Accepted()), seen.Load(); a > s {
		t.Fatalf("the broker accepted %d connections, the policy observed %d: a socket went around it", a, s)
	}

	proxy2 := connectortest.NewProxy(t, broker(t))
	host, port = split(t, proxy2.Addr())
	props["server"], props["port"] = host, port
	deny := &connector.DialPolicy{DenyLoopback: true}
	denied := managerWith(t, &connector.Policy{Dial: deny})
	if _, err := denied.Create(context.Background(), connection.Spec{ID: "bus", Type: Type, Props: props}); err != nil {
		t.Fatal(err)
	}
	if in := connectortest.WaitState(t, denied, "bus", connection.StateDisconnected, 10*time.Second); !strings.Contains(in.Err, "denied") {
		t.Errorf("denied: %+v", in.Status)
	}
	if _, err := check.New(&check.Options{Registry: reg, DialPolicy: deny}).Sink(context.Background(), check.Request{Type: Type, Props: props}); err == nil {
		t.Error("a check under a policy denying loopback passed")
	}
	denied.Close()
	if n := proxy2.Accepted(); n != 0 {
		t.Fatalf("a denied bus reached the broker %d times", n)
	}
}

// hugeConnack is a CONNACK's fixed header claiming 268,435,455 bytes.
var hugeConnack = []byte{0x20, 0xff, 0xff, 0xff, 0x7f}

// TestHostileBroker: a broker that answers CONNECT with a header claiming
// 256 MiB costs a dial, by a check and by the Manager, far less than
// 1 MiB, and the error names the handshake budget.
func TestHostileBroker(t *testing.T) {
	p := hostiletest.Listen(t, func(c net.Conn) {
		if _, err := packets.ReadPacket(c); err != nil {
			return
		}
		c.Write(hugeConnack)
		hostiletest.Hold(c)
	})
	host, port := split(t, p.Addr())
	props := map[string]any{"server": host, "port": port}
	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	ch := check.New(&check.Options{Registry: reg, Timeout: 3 * time.Second})
	var err error
	n := hostiletest.Allocated(func() { _, err = ch.Sink(context.Background(), check.Request{Type: Type, Props: props}) })
	t.Logf("a check allocated %d bytes: %v", n, err)
	if err == nil || !strings.Contains(err.Error(), "HandshakeBudget") {
		t.Errorf("check: %v, want an error naming the handshake budget", err)
	}
	if n > hostiletest.Budget {
		t.Errorf("a check allocated %d bytes, over %d", n, hostiletest.Budget)
	}
	m := newManager(t)
	before := p.Accepted()
	n = hostiletest.Allocated(func() {
		if _, err := m.Create(context.Background(), connection.Spec{ID: "bus", Type: Type, Props: props}); err != nil {
			t.Fatal(err)
		}
		connectortest.Eventually(t, "an error naming the handshake budget", func() bool {
			in, _ := m.Get("bus")
			return strings.Contains(in.Err, "HandshakeBudget") && p.Accepted() > before
		})
	})
	dials := uint64(p.Accepted() - before)
	t.Logf("the Manager's %d dials allocated %d bytes, %d each", dials, n, n/dials)
	if n/dials > hostiletest.Budget {
		t.Errorf("a dial allocated %d bytes, over %d", n/dials, hostiletest.Budget)
	}
}

// TestMaxMessageBytes: against mosquitto, a message envelope whose packet
// is exactly maxMessageBytes arrives; one a byte larger closes the
// session, naming maxMessageBytes, and the Manager dials again, with the
// subscription back.
func TestMaxMessageBytes(t *testing.T) {
	addr := connectortest.Env(t, "CONNKIT_MQTT_ADDR")
	const limit = 1000
	host, port := split(t, addr)
	m := newManager(t)
	if _, err := m.Create(context.Background(), connection.Spec{ID: "bus", Type: Type, Props: map[string]any{"server": host, "port": port, "maxMessageBytes": limit}}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "bus", connection.StateConnected, 10*time.Second)
	c, err := Attach(context.Background(), m, "bus", "r")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Detach("bus", "r")
	topic := "edgex/limit/" + randomID("")
	msgs, errs := make(chan types.MessageEnvelope, 4), make(chan error, 4)
	if err := c.Subscribe([]types.TopicChannel{{Topic: topic, Messages: msgs}}, errs); err != nil {
		t.Fatal(err)
	}
	pub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(randomID("bare-")).SetProtocolVersion(4))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(0)
	// An envelope of n bytes in a QoS 0 PUBLISH: the topic's length, the
	// topic, the envelope.
	envelope := func(id string, n int) []byte {
		b, _ := json.Marshal(map[string]string{"correlationID": id, "pad": ""})
		b, _ = json.Marshal(map[string]string{"correlationID": id, "pad": strings.Repeat("p", n-len(b))})
		return b
	}
	send := func(id string, rl int) {
		tok := pub.Publish(topic, 0, false, envelope(id, rl-2-len(topic)))
		tok.Wait()
	}
	receive := func(id string) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case got := <-msgs:
				if got.CorrelationID == id {
					return
				}
			case <-deadline:
				t.Fatalf("%s never came", id)
			}
		}
	}
	send("at", limit)
	receive("at")
	before, _ := m.Get("bus")
	send("over", limit+1)
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
		t.Errorf("no redial: %+v", after.Status)
	}
	connectortest.Eventually(t, "a message after the redial", func() bool {
		send("again", limit)
		select {
		case got := <-msgs:
			return got.CorrelationID == "again"
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
}
