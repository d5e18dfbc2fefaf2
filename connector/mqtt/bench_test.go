package mqtt

import (
	"context"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
)

// BenchmarkPublishQoS0 publishes 10,000 QoS 0 messages per op through a
// bare paho client and through the managed client on the same broker, in
// the same run, and reports the time per message of each and their ratio.
func BenchmarkPublishQoS0(b *testing.B) {
	addr := connectortest.Env(b, "CONNKIT_MQTT_ADDR")
	bareCl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(randomID("bench-bare-")).SetProtocolVersion(4))
	if tok := bareCl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	defer bareCl.Disconnect(0)
	m := newManager(b, nil)
	if _, err := m.Create(ctx, connection.Spec{ID: "bus", Type: Type, Props: map[string]any{"server": "tcp://" + addr}}); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for in, _ := m.Get("bus"); in.State != connection.StateConnected; in, _ = m.Get("bus") {
		if time.Now().After(deadline) {
			b.Fatal("not connected")
		}
		time.Sleep(5 * time.Millisecond)
	}
	managed, err := Client(m.Attach(ctx, "bus", "bench"))
	if err != nil {
		b.Fatal(err)
	}
	const n = 10000
	payload := []byte(`{"temperature":21.5,"humidity":40}`)
	publish := func(c paho.Client) time.Duration {
		start := time.Now()
		var last paho.Token
		for range n {
			last = c.Publish("bench/qos0", 0, false, payload)
		}
		last.Wait()
		if err := last.Error(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var bare, mgd time.Duration
	b.ResetTimer()
	for b.Loop() {
		bare += publish(bareCl)
		mgd += publish(managed)
	}
	b.ReportMetric(float64(bare.Nanoseconds())/float64(b.N*n), "bare-ns/msg")
	b.ReportMetric(float64(mgd.Nanoseconds())/float64(b.N*n), "managed-ns/msg")
	b.ReportMetric(float64(mgd)/float64(bare), "managed/bare")
}

// BenchmarkSinkCheck is the latency of one sink check.
func BenchmarkSinkCheck(b *testing.B) {
	addr := connectortest.Env(b, "CONNKIT_MQTT_ADDR")
	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	c := check.New(&check.Options{Registry: reg})
	for _, tc := range []struct{ name, addr string }{
		{"refused", closedAddr(b)},
		{"broker", addr},
	} {
		b.Run(tc.name, func(b *testing.B) {
			props := map[string]any{"server": "tcp://" + tc.addr, "topic": "x"}
			for b.Loop() {
				_, err := c.Sink(context.Background(), check.Request{Type: Type, Props: props})
				if (err == nil) != (tc.name == "broker") {
					b.Fatalf("check %s: %v", tc.name, err)
				}
			}
		})
	}
}

func closedAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
