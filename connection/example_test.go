package connection_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

func Example() {
	ctx := context.Background()
	reg := &registry.Registry{}
	reg.Register("fake", connectortest.NewFake())
	m, err := connection.New(ctx, memory.New(), &connection.Options{Registry: reg})
	if err != nil {
		panic(err)
	}
	defer m.Close()

	in, err := m.Create(ctx, connection.Spec{ID: "bus", Type: "fake",
		Props: map[string]any{"addr": "broker", "password": "hunter2"}})
	if err != nil {
		panic(err)
	}
	fmt.Println(in.ID, in.Version, in.Props["password"])

	// Two rules share one live connection; each gets a client of its own.
	c1, _ := m.Attach(ctx, "bus", "rule1/source")
	c2, _ := m.Attach(ctx, "bus", "rule2/sink")
	fmt.Println(c1.(*connectortest.FakeClient).Conn() == c2.(*connectortest.FakeClient).Conn())

	// A connection in use cannot be deleted.
	err = m.Delete(ctx, "bus", connection.Tag{})
	fmt.Println(errors.Is(err, connection.ErrInUse), err)

	m.Detach("bus", "rule1/source")
	m.Detach("bus", "rule2/sink")
	fmt.Println(m.Delete(ctx, "bus", connection.Tag{}))
	// Output:
	// bus 1 ******
	// true
	// true connection "bus" cannot be deleted: it is used by rule1/source, rule2/sink; detach them first
	// <nil>
}

// A Handle releases exactly its own attach, even when another user holds
// the same ref name: here a rule restarts while its old instance stops.
func ExampleManager_Hold() {
	ctx := context.Background()
	reg := &registry.Registry{}
	reg.Register("fake", connectortest.NewFake())
	m, _ := connection.New(ctx, memory.New(), &connection.Options{Registry: reg})
	defer m.Close()
	m.Create(ctx, connection.Spec{ID: "bus", Type: "fake", Props: map[string]any{"addr": "broker"}})

	old, _ := m.Hold(ctx, "bus", "rule1/source")
	restarted, _ := m.Hold(ctx, "bus", "rule1/source")
	old.Close()

	in, _ := m.Get("bus")
	fmt.Println(in.RefCount, in.Refs)
	fmt.Println(old.Client().(*connectortest.FakeClient).Use())
	fmt.Println(errors.Is(m.Delete(ctx, "bus", connection.Tag{}), connection.ErrInUse))
	restarted.Close()
	fmt.Println(m.Delete(ctx, "bus", connection.Tag{}))
	// Output:
	// 1 [rule1/source]
	// fake: the client was detached from its connection; attach again to use it
	// true
	// <nil>
}

// A rule holds its connection and stops when its attach is revoked: on a
// shared store, another instance changed the connection under it (on
// etcd, only once this instance's refs lapsed; the memory store here
// publishes no refs at all).
func ExampleHandle_Done() {
	ctx := context.Background()
	reg := &registry.Registry{}
	reg.Register("fake", connectortest.NewFake())
	shared := memory.New()
	here, _ := connection.New(ctx, shared, &connection.Options{Registry: reg})
	defer here.Close()
	other, _ := connection.New(ctx, shared, &connection.Options{Registry: reg})
	defer other.Close()
	here.Create(ctx, connection.Spec{ID: "bus", Type: "fake", Props: map[string]any{"addr": "broker"}})

	h, _ := here.Hold(ctx, "bus", "rule1/source")
	other.Update(ctx, connection.Spec{ID: "bus", Type: "fake", Props: map[string]any{"addr": "broker", "retries": 5}}, connection.Tag{})
	<-h.Done()
	fmt.Println(errors.Is(h.Err(), connection.ErrRevoked))
	h.Close()
	// Output:
	// true
}

func ExampleManager_Create_invalid() {
	reg := &registry.Registry{}
	reg.Register("fake", connectortest.NewFake())
	m, _ := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg})
	defer m.Close()

	_, err := m.Create(context.Background(), connection.Spec{ID: "bus", Type: "fake",
		Props: map[string]any{"adr": "broker"}})
	var ce *connection.Error
	if errors.As(err, &ce) {
		for _, f := range ce.Fields {
			fmt.Printf("%s: %s\n", f.Field, f.Message)
		}
	}
	// Output:
	// addr: required: give a string
	// adr: unknown property; the known ones are addr, password, url, header, mode, retries
}

// An engine follows every change of its connections, here until the new
// connection is up.
func ExampleManager_Subscribe() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fake := connectortest.NewFake()
	fake.SetUp("broker", true)
	reg := &registry.Registry{}
	reg.Register("fake", fake)
	m, _ := connection.New(ctx, memory.New(), &connection.Options{Registry: reg})
	defer m.Close()

	events := m.Subscribe(ctx, connection.SubscribeOptions{Connection: "bus"})
	m.Create(ctx, connection.Spec{ID: "bus", Type: "fake", Props: map[string]any{"addr": "broker"}})
	for ev := range events {
		fmt.Println(ev.Kind, ev.ID, ev.Status.State)
		if ev.Kind == connection.EventStatus && ev.Status.State == connection.StateConnected {
			break
		}
	}
	// Output:
	// created bus connecting
	// status bus connected
}

// WaitConnected bounds the wait for a link with a context, and says the
// last status when it runs out.
func ExampleManager_WaitConnected() {
	fake := connectortest.NewFake()
	fake.SetUp("broker", false)
	reg := &registry.Registry{}
	reg.Register("fake", fake)
	m, _ := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg})
	defer m.Close()
	m.Create(context.Background(), connection.Spec{ID: "bus", Type: "fake", Props: map[string]any{"addr": "broker"}})

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := m.WaitConnected(ctx, "bus")
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	fmt.Println(err)
	// Output:
	// true
	// connection "bus" is not connected: disconnected: fake: dial broker: connection refused
}

// ParseSpec reads a request body as the REST API does: strictly, bounded
// in depth and cost, with errors that name the field.
func ExampleParseSpec() {
	spec, err := connection.ParseSpec([]byte(`{"id":"bus","typ":"mqtt","props":{"server":"tcp://127.0.0.1:1883"}}`))
	fmt.Println(spec.ID, spec.Type, spec.Props["server"], err)

	_, err = connection.ParseSpec([]byte(`{"id":"bus","props":{"server":"a","server":"b"}}`))
	var ce *connection.Error
	errors.As(err, &ce)
	fmt.Println(ce.Fields[0].Field+":", ce.Fields[0].Message)
	// Output:
	// bus mqtt tcp://127.0.0.1:1883 <nil>
	// props.server: the key is given twice; give it once
}
