package edgex

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgexfoundry/go-mod-messaging/v3/pkg/types"
	"github.com/google/go-cmp/cmp"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/secret"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

func newManager(t *testing.T) *connection.Manager {
	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{
		Registry: reg, Logger: slog.New(slog.DiscardHandler), MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		DialTimeout: 3 * time.Second, HealthInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestBusEndToEnd(t *testing.T) {
	addr := connectortest.Env(t, "CONNKIT_MQTT_ADDR")
	host, port := split(t, addr)
	ctx := context.Background()
	m := newManager(t)
	props := map[string]any{"server": host, "port": port, "optional": map[string]any{"Qos": 1, "Password": "pw-not-needed", "ClientId": "edgex-e2e"}}
	before := connector.Props(props).Clone()
	if _, err := m.Create(ctx, connection.Spec{ID: "bus", Type: Type, Props: props}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "bus", connection.StateConnected, 10*time.Second)
	if diff := cmp.Diff(before, connector.Props(props)); diff != "" {
		t.Errorf("Create modified the props (-before +after):\n%s", diff)
	}
	in, _ := m.Get("bus")
	opt := in.Props["optional"].(map[string]any)
	if opt["Password"] != secret.Mask || opt["ClientId"] != "edgex-e2e" {
		t.Errorf("optional as reported: %v", opt)
	}

	pub, err := ClientOf(m.Attach(ctx, "bus", "rule1/sink"))
	if err != nil {
		t.Fatal(err)
	}
	subA, _ := ClientOf(m.Attach(ctx, "bus", "rule2/source"))
	subB, _ := ClientOf(m.Attach(ctx, "bus", "rule3/source"))
	topic := "edgex/events/" + strconv.FormatInt(time.Now().UnixNano(), 36)
	a, b := make(chan types.MessageEnvelope, 4), make(chan types.MessageEnvelope, 4)
	errs := make(chan error, 4)
	if err := subA.Subscribe([]types.TopicChannel{{Topic: topic, Messages: a}}, errs); err != nil {
		t.Fatal(err)
	}
	if err := subB.Subscribe([]types.TopicChannel{{Topic: topic, Messages: b}}, errs); err != nil {
		t.Fatal(err)
	}
	env := types.NewMessageEnvelopeForRequest([]byte(`{"reading":21.5}`), nil)
	if err := pub.Publish(env, topic); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan types.MessageEnvelope{"A": a, "B": b} {
		select {
		case got := <-ch:
			if got.CorrelationID != env.CorrelationID || got.ReceivedTopic != topic {
				t.Errorf("%s got %+v", name, got)
			}
		case err := <-errs:
			t.Fatalf("%s: %v", name, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("ref %s received nothing", name)
		}
	}
	// rule2 leaves: rule3 keeps the topic; rule2 gets nothing more. The
	// forwarder serves refs in order, so had rule2 still been on the
	// topic, it would have had the message before rule3.
	m.Detach("bus", "rule2/source")
	env2 := types.NewMessageEnvelopeForRequest([]byte(`{"reading":22}`), nil)
	if err := pub.Publish(env2, topic); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-b:
		if got.CorrelationID != env2.CorrelationID {
			t.Errorf("rule3 got %+v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("rule3 lost the topic when rule2 left")
	}
	select {
	case got := <-a:
		t.Errorf("rule2 still receives after it left: %+v", got)
	default:
	}
	// rule2's view is done: every operation says so at once.
	if err := subA.Publish(env2, topic); !errors.Is(err, connector.ErrDetached) {
		t.Errorf("Publish after detach: %v, want ErrDetached", err)
	}
	if err := subA.Subscribe([]types.TopicChannel{{Topic: topic + "/x", Messages: a}}, errs); !errors.Is(err, connector.ErrDetached) {
		t.Errorf("Subscribe after detach: %v, want ErrDetached", err)
	}
	if _, err := subA.Request(env2, topic, topic, time.Second); !errors.Is(err, connector.ErrDetached) {
		t.Errorf("Request after detach: %v, want ErrDetached", err)
	}
	if err := subA.Connect(); !errors.Is(err, connector.ErrDetached) {
		t.Errorf("Connect after detach: %v, want ErrDetached", err)
	}
	// The typed Attach refuses nothing of its own type.
	if c, err := Attach(ctx, m, "bus", "rule4/sink"); err != nil || c.Publish(env2, topic) != nil {
		t.Errorf("typed Attach: %v", err)
	}
	m.Detach("bus", "rule4/sink")
	m.Detach("bus", "rule1/sink")
	m.Detach("bus", "rule3/source")
}

func TestNatsNeedsTag(t *testing.T) {
	m := newManager(t)
	_, err := m.Create(context.Background(), connection.Spec{ID: "bus", Type: Type, Props: map[string]any{"server": "127.0.0.1", "type": "nats-core"}})
	if err == nil || !strings.Contains(err.Error(), "include_nats_messaging") {
		t.Errorf("nats-core without the tag: %v", err)
	}
}

// TestNoCheckWithoutDialing: under a dial policy, a bus whose client
// cannot be held to it is not checked, and the check says so; it never
// answers ok without dialing. (nats-core needs a build tag to be parsed,
// so the settings are made here.)
func TestNoCheckWithoutDialing(t *testing.T) {
	s := &settings{cfg: types.MessageBusConfig{Type: "nats-core", Broker: types.HostInfo{Host: "127.0.0.1", Port: 4222, Protocol: "tcp"}}}
	ctx := connector.WithDialPolicy(context.Background(), &connector.DialPolicy{DenyLinkLocal: true})
	err := s.check(ctx)
	if !errors.Is(err, connector.ErrNotCheckable) || !strings.Contains(err.Error(), "nats-core") {
		t.Errorf("nats-core under a policy: %v, want ErrNotCheckable", err)
	}
	// A protocol MQTT is not spoken over is refused as such, never
	// answered ok.
	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	_, err = check.New(&check.Options{Registry: reg, DialPolicy: &connector.DialPolicy{DenyLinkLocal: true}}).
		Sink(context.Background(), check.Request{Type: Type, Props: map[string]any{"server": "127.0.0.1", "protocol": "quic"}})
	if !errors.Is(err, check.ErrInvalid) || !strings.Contains(err.Error(), "protocol") {
		t.Errorf("a protocol MQTT is not spoken over: %v, want invalid, naming protocol", err)
	}
}

// TestLastActivity: a publish marks the publishing connection active, and
// the message received on a subscription marks the subscribing one.
func TestLastActivity(t *testing.T) {
	addr := connectortest.Env(t, "CONNKIT_MQTT_ADDR")
	host, port := split(t, addr)
	ctx := context.Background()
	m := newManager(t)
	for _, id := range []string{"pub", "sub"} {
		if _, err := m.Create(ctx, connection.Spec{ID: id, Type: Type, Props: map[string]any{"server": host, "port": port}}); err != nil {
			t.Fatal(err)
		}
		connectortest.WaitState(t, m, id, connection.StateConnected, 10*time.Second)
	}
	pub, err := Attach(ctx, m, "pub", "rule1/sink")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := Attach(ctx, m, "sub", "rule2/source")
	if err != nil {
		t.Fatal(err)
	}
	topic := "edgex/activity/" + strconv.FormatInt(time.Now().UnixNano(), 36)
	msgs, errs := make(chan types.MessageEnvelope, 1), make(chan error, 1)
	if err := sub.Subscribe([]types.TopicChannel{{Topic: topic, Messages: msgs}}, errs); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"pub", "sub"} {
		if in, _ := m.Get(id); !in.LastActivityAt.IsZero() {
			t.Fatalf("%s: LastActivityAt %v before any message", id, in.LastActivityAt)
		}
	}
	if err := pub.Publish(types.NewMessageEnvelopeForRequest([]byte(`{"reading":1}`), nil), topic); err != nil {
		t.Fatal(err)
	}
	select {
	case <-msgs:
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
	for _, id := range []string{"pub", "sub"} {
		connectortest.WaitActive(t, m, id)
	}
	m.Detach("pub", "rule1/sink")
	m.Detach("sub", "rule2/source")
}

// TestSelfDialerUnderPolicy: a bus whose client dials on its own (NATS)
// cannot be held to a dial policy that restricts or observes anything;
// without one, or with an empty one, nothing stops it.
func TestSelfDialerUnderPolicy(t *testing.T) {
	nats := &settings{cfg: types.MessageBusConfig{Type: "nats-core"}}
	mqtt := &settings{cfg: types.MessageBusConfig{Type: "mqtt"}}
	for name, p := range map[string]*connector.DialPolicy{
		"deny private": {DenyPrivate: true},
		"ports":        {Ports: []uint16{4222}},
		"observe":      {Observe: func(netip.AddrPort) {}},
	} {
		if why := nats.selfDialed(p); !strings.Contains(why, "nats-core") || !strings.Contains(why, "dial policy") {
			t.Errorf("nats-core, %s: %q, want a refusal", name, why)
		}
		if why := mqtt.selfDialed(p); why != "" {
			t.Errorf("mqtt, %s: %q, want none: its sockets come from the policy", name, why)
		}
	}
	if nats.selfDialed(nil) != "" || nats.selfDialed(&connector.DialPolicy{}) != "" {
		t.Error("nats-core refused without a policy that asks anything")
	}
}
