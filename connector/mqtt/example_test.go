package mqtt_test

import (
	"context"
	"errors"
	"fmt"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/mqtt"
)

// Two rules on one broker session: each subscribes through its own view,
// and detaching one drops only its subscriptions.
func ExampleAttach() {
	ctx := context.Background()
	var m *connection.Manager // built with connection.New over a store

	// A connection of another type is refused, and no ref is left behind.
	src, err := mqtt.Attach(ctx, m, "broker", "rule1/source")
	if err != nil {
		panic(err)
	}
	defer m.Detach("broker", "rule1/source")
	src.Subscribe("sensors/+/temperature", 1, func(_ paho.Client, msg paho.Message) {
		fmt.Println(msg.Topic(), string(msg.Payload()))
	})

	sink, _ := mqtt.Attach(ctx, m, "broker", "rule2/sink")
	defer m.Detach("broker", "rule2/sink")
	sink.Publish("alerts", 1, false, `{"level":"high"}`).Wait()
}

// A session that outlives outages: the broker keeps the subscriptions and
// what they receive while connkit is away, and a QoS 1 publish while the
// link is down waits in the queue (on disk with clientStatePath) until
// the broker acknowledges it.
func ExampleAttach_persistentSession() {
	ctx := context.Background()
	var m *connection.Manager // built with connection.New over a store

	m.Create(ctx, connection.Spec{ID: "plant", Type: mqtt.Type, Props: map[string]any{
		"server":              "tcp://127.0.0.1:1883",
		"clientid":            "plant-gateway-1", // stable: the broker finds its session by it
		"enableClientSession": true,
		"clientStatePath":     "/var/lib/engine/mqtt",
		"publishBuffer":       10000,
	}})
	c, _ := mqtt.Attach(ctx, m, "plant", "rule1/sink")
	tok := c.Publish("plant/line1/count", 1, false, "42")
	select {
	case <-tok.Done():
		if errors.Is(tok.Error(), mqtt.ErrBufferFull) {
			fmt.Println("the broker has been away too long: shed load")
		}
	case <-ctx.Done():
	}
}
