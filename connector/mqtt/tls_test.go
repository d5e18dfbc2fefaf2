package mqtt

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
)

// TestClientCertificate: a broker behind a private CA that requires a
// client certificate (mosquitto, as make test starts it). The connection
// and its checks get through with the CA, the certificate and the key,
// and not without the certificate.
func TestClientCertificate(t *testing.T) {
	addr := connectortest.Env(t, "CONNKIT_MQTT_TLS_ADDR")
	ca, cert, key := connectortest.Env(t, "CONNKIT_TLS_CA"), connectortest.Env(t, "CONNKIT_TLS_CLIENT_CERT"), connectortest.Env(t, "CONNKIT_TLS_CLIENT_KEY")
	props := map[string]any{"server": "ssl://" + addr, "rootCaPath": ca, "certificationPath": cert, "privateKeyPath": key}
	m := newManager(t, nil)
	create(t, m, "tls", props)
	c, err := Attach(ctx, m, "tls", "r")
	if err != nil {
		t.Fatal(err)
	}
	var in inbox
	topic := randomID("tls/")
	wait(t, c.Subscribe(topic, 1, in.handler))
	wait(t, c.Publish(topic, 1, false, "over TLS"))
	waitFor(t, "the message over TLS", 5*time.Second, func() bool { return in.has("over TLS") })
	m.Detach("tls", "r")

	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	ap := netip.MustParseAddrPort(addr)
	exact := &connector.DialPolicy{Allow: []netip.Prefix{netip.PrefixFrom(ap.Addr(), 32)}, Ports: []uint16{ap.Port()}}
	for name, pol := range map[string]*connector.DialPolicy{"no policy": nil, "exact policy": exact} {
		if _, err := check.New(&check.Options{Registry: reg, DialPolicy: pol}).Sink(ctx, check.Request{Type: Type, Props: props}); err != nil {
			t.Errorf("check, %s: %v", name, err)
		}
	}
	noCert := map[string]any{"server": "ssl://" + addr, "rootCaPath": ca}
	if _, err := check.New(&check.Options{Registry: reg}).Sink(ctx, check.Request{Type: Type, Props: noCert}); !errors.Is(err, check.ErrFailed) {
		t.Errorf("check without the client certificate: %v, want it to fail", err)
	}
	if _, err := m.Create(ctx, connection.Spec{ID: "nocert", Type: Type, Props: noCert}); err != nil {
		t.Fatal(err)
	}
	if in := connectortest.WaitState(t, m, "nocert", connection.StateDisconnected, 10*time.Second); in.Err == "" {
		t.Error("disconnected without a reason")
	}
}
