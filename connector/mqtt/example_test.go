package mqtt_test

import (
	"context"
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
