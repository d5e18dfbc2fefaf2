package edgex

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/edgexfoundry/go-mod-messaging/v3/messaging"
	"github.com/edgexfoundry/go-mod-messaging/v3/pkg/types"

	"github.com/connkit/connkit/connector/connectortest"
)

func split(t *testing.T, addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return host, n
}

func TestConformance(t *testing.T) {
	addr := connectortest.Env(t, "CONNKIT_MQTT_ADDR")
	authAddr := connectortest.Env(t, "CONNKIT_MQTT_AUTH_ADDR")
	user, pw := connectortest.Env(t, "CONNKIT_MQTT_USER"), connectortest.Env(t, "CONNKIT_MQTT_PASSWORD")
	props := func(a string) map[string]any {
		host, port := split(t, a)
		return map[string]any{"server": host, "port": port, "optional": map[string]any{"Username": user, "Password": pw}}
	}
	connectortest.Run(t, connectortest.Harness{
		Name:  Type,
		Type:  Connector{},
		Addr:  addr,
		Props: props,
		BadAuth: func() map[string]any {
			host, port := split(t, authAddr)
			return map[string]any{"server": host, "port": port, "optional": map[string]any{"Username": user, "Password": "wr0ng-Edgex-pw"}}
		},
		Secrets: []string{pw, "wr0ng-Edgex-pw"},
		Invalid: []connectortest.Invalid{
			{Name: "no server", Props: map[string]any{}, Fields: []string{"server"}},
			{Name: "server with port", Props: map[string]any{"server": "127.0.0.1:1883"}, Fields: []string{"server"}},
			{Name: "port", Props: map[string]any{"server": "127.0.0.1", "port": 70000}, Fields: []string{"port"}},
			{Name: "redis", Props: map[string]any{"server": "127.0.0.1", "type": "redis"}, Fields: []string{"type"}},
			{Name: "nats without the tag", Props: map[string]any{"server": "127.0.0.1", "type": "nats-core"}, Fields: []string{"type"}},
			{Name: "unknown optional", Props: map[string]any{"server": "127.0.0.1", "optional": map[string]any{"Color": "red"}}, Fields: []string{"optional"}},
			{Name: "bad Qos", Props: map[string]any{"server": "127.0.0.1", "optional": map[string]any{"Qos": 3}}, Fields: []string{"optional"}},
		},
		SourceProps: props,
		SinkProps:   props,
		Use: func(client any) error {
			return client.(messaging.MessageClient).Publish(types.NewMessageEnvelopeForRequest([]byte("{}"), nil), "edgex/use")
		},
		// A message through the broker: published by the view, received
		// on its own subscription.
		Exchange: func(t *testing.T, client any) func(*testing.T) {
			c := client.(messaging.MessageClient)
			topic := "edgex/conformance/" + randomID("")
			msgs, errs := make(chan types.MessageEnvelope, 16), make(chan error, 16)
			if err := c.Subscribe([]types.TopicChannel{{Topic: topic, Messages: msgs}}, errs); err != nil {
				t.Fatal(err)
			}
			return func(t *testing.T) {
				env := types.NewMessageEnvelopeForRequest([]byte(`{"reading":1}`), nil)
				if err := c.Publish(env, topic); err != nil {
					t.Fatal(err)
				}
				deadline := time.After(10 * time.Second)
				for {
					select {
					case got := <-msgs:
						if got.CorrelationID == env.CorrelationID {
							return
						}
					case err := <-errs:
						t.Fatalf("subscription: %v", err)
					case <-deadline:
						t.Fatal("the message published through the view never came back")
					}
				}
			}
		},
	})
}
