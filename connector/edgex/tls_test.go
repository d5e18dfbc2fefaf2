package edgex

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/edgexfoundry/go-mod-messaging/v3/pkg/types"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
)

// TestClientCertificate: an EdgeX bus on a broker behind a private CA that
// requires a client certificate. CaFile, CertFile and KeyFile reach the
// message client, of a connection and of a check: the connection carries
// messages and the check passes, under a dial policy too; without the
// certificate the check fails.
func TestClientCertificate(t *testing.T) {
	addr := connectortest.Env(t, "CONNKIT_MQTT_TLS_ADDR")
	ca, cert, key := connectortest.Env(t, "CONNKIT_TLS_CA"), connectortest.Env(t, "CONNKIT_TLS_CLIENT_CERT"), connectortest.Env(t, "CONNKIT_TLS_CLIENT_KEY")
	host, port := split(t, addr)
	props := func(opt map[string]any) map[string]any {
		return map[string]any{"protocol": "ssl", "server": host, "port": port, "optional": opt}
	}
	withCert := props(map[string]any{"CaFile": ca, "CertFile": cert, "KeyFile": key, "ClientId": "edgex-tls"})
	ctx := context.Background()
	m := newManager(t)
	if _, err := m.Create(ctx, connection.Spec{ID: "bus", Type: Type, Props: withCert}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "bus", connection.StateConnected, 10*time.Second)
	c, err := Attach(ctx, m, "bus", "r")
	if err != nil {
		t.Fatal(err)
	}
	topic := "edgex/tls/" + strconv.FormatInt(time.Now().UnixNano(), 36)
	msgs, errs := make(chan types.MessageEnvelope, 1), make(chan error, 1)
	if err := c.Subscribe([]types.TopicChannel{{Topic: topic, Messages: msgs}}, errs); err != nil {
		t.Fatal(err)
	}
	env := types.NewMessageEnvelopeForRequest([]byte(`{"tls":true}`), nil)
	if err := c.Publish(env, topic); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-msgs:
		if got.CorrelationID != env.CorrelationID {
			t.Errorf("got %+v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message over TLS")
	}
	m.Detach("bus", "r")

	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	ap := netip.MustParseAddrPort(addr)
	exact := &connector.DialPolicy{Allow: []netip.Prefix{netip.PrefixFrom(ap.Addr(), 32)}, Ports: []uint16{ap.Port()}}
	for name, pol := range map[string]*connector.DialPolicy{"no policy": nil, "exact policy": exact} {
		if _, err := check.New(&check.Options{Registry: reg, DialPolicy: pol}).Source(ctx, check.Request{Type: Type, Props: withCert}); err != nil {
			t.Errorf("check, %s: %v", name, err)
		}
	}
	noCert := props(map[string]any{"CaFile": ca})
	for name, pol := range map[string]*connector.DialPolicy{"no policy": nil, "exact policy": exact} {
		if _, err := check.New(&check.Options{Registry: reg, DialPolicy: pol}).Source(ctx, check.Request{Type: Type, Props: noCert}); !errors.Is(err, check.ErrFailed) {
			t.Errorf("check without the client certificate, %s: %v, want it to fail", name, err)
		}
	}
	if _, err := m.Create(ctx, connection.Spec{ID: "nocert", Type: Type, Props: noCert}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "nocert", connection.StateDisconnected, 10*time.Second)
}
