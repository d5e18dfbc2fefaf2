package mqtt

import (
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/connkit/connkit/connector/connectortest"
)

func harness(t *testing.T) connectortest.Harness {
	addr := connectortest.Env(t, "CONNKIT_MQTT_ADDR")
	authAddr := connectortest.Env(t, "CONNKIT_MQTT_AUTH_ADDR")
	user, pw := connectortest.Env(t, "CONNKIT_MQTT_USER"), connectortest.Env(t, "CONNKIT_MQTT_PASSWORD")
	props := func(a string) map[string]any {
		return map[string]any{"server": "tcp://" + a, "username": user, "password": pw}
	}
	return connectortest.Harness{
		Name:  Type,
		Type:  Connector{},
		Addr:  addr,
		Props: props,
		BadAuth: func() map[string]any {
			return map[string]any{"server": "tcp://" + authAddr, "username": user, "password": "wrong-Secret-9"}
		},
		Secrets: []string{pw, "wrong-Secret-9"},
		Invalid: []connectortest.Invalid{
			{Name: "no server", Props: map[string]any{}, Fields: []string{"server"}},
			{Name: "http server", Props: map[string]any{"server": "http://127.0.0.1:1883"}, Fields: []string{"server"}},
			{Name: "no host", Props: map[string]any{"server": "tcp://"}, Fields: []string{"server"}},
			{Name: "MQTT 5", Props: map[string]any{"server": "tcp://" + addr, "protocolVersion": "5"}, Fields: []string{"protocolVersion"}},
			{Name: "keepAlive kind", Props: map[string]any{"server": "tcp://" + addr, "keepAlive": "60s"}, Fields: []string{"keepAlive"}},
			{Name: "negative keepAlive", Props: map[string]any{"server": "tcp://" + addr, "keepAlive": -1}, Fields: []string{"keepAlive"}},
			{Name: "unknown prop", Props: map[string]any{"server": "tcp://" + addr, "qos": 1}, Fields: []string{"qos"}},
			{Name: "missing CA file", Props: map[string]any{"server": "ssl://" + addr, "rootCaPath": "/nonexistent/ca.pem"}, Fields: []string{"rootCaPath"}},
			{Name: "cert without key", Props: map[string]any{"server": "ssl://" + addr, "certificationPath": "/x.pem"}, Fields: []string{"privateKeyPath"}},
		},
		StartLate: func(t *testing.T) (string, func()) {
			b := connectortest.NewBroker(t)
			return b.Addr(), b.Start
		},
		SourceProps: func(a string) map[string]any {
			p := props(a)
			p["datasource"] = "sensors/#"
			return p
		},
		SinkProps: func(a string) map[string]any {
			p := props(a)
			p["topic"], p["qos"] = "out", 1
			return p
		},
		Use: func(client any) error {
			tok := client.(paho.Client).Publish(randomID("use/"), 0, false, "x")
			tok.Wait()
			return tok.Error()
		},
		// A message each way: from a client of the broker's own to the
		// view's subscription, and from the view to that client.
		Exchange: func(t *testing.T, client any) func(*testing.T) {
			v := client.(paho.Client)
			topic := randomID("conformance/")
			var in, out inbox
			wait(t, v.Subscribe(topic+"/in", 1, in.handler))
			other := bare(t, addr)
			wait(t, other.Subscribe(topic+"/out", 1, out.handler))
			n := 0
			return func(t *testing.T) {
				n++
				msg := fmt.Sprintf("m%d", n)
				wait(t, other.Publish(topic+"/in", 1, false, msg))
				waitFor(t, "the view to receive "+msg, 10*time.Second, func() bool { return in.has(msg) })
				wait(t, v.Publish(topic+"/out", 1, false, msg))
				waitFor(t, "the broker's client to receive "+msg, 10*time.Second, func() bool { return out.has(msg) })
			}
		},
	}
}

func TestConformance(t *testing.T) {
	connectortest.Run(t, harness(t))
}
