package mqtt

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
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

// BenchmarkMemoryPerConnection opens n mqtt connections to one
// mosquitto, each with a persistent session, the publish queue and one
// attached rule subscribed to a topic of its own, and reports what the
// process grew by per connection: resident memory (as top shows it, what
// the issue compared with eKuiper) and the Go heap and stacks in use.
func BenchmarkMemoryPerConnection(b *testing.B) {
	for _, n := range []int{2000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			// A broker of its own: the sessions outlive the run.
			br := connectortest.NewBroker(b)
			br.Start()
			addr := br.Addr()
			for b.Loop() {
				rss0, heap0 := memNow()
				m := newManager(b, nil)
				for i := range n {
					id := fmt.Sprintf("m%05d", i)
					if _, err := m.Create(ctx, connection.Spec{ID: id, Type: Type, Props: map[string]any{
						"server": "tcp://" + addr, "clientid": randomID("mem-"), "enableClientSession": true}}); err != nil {
						b.Fatal(err)
					}
				}
				for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
					up := 0
					for _, in := range m.List() {
						if in.State == connection.StateConnected {
							up++
						}
					}
					if up == n {
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("%d of %d connected", up, n)
					}
				}
				for i := range n {
					id := fmt.Sprintf("m%05d", i)
					c, err := Client(m.Attach(ctx, id, "rule/source"))
					if err != nil {
						b.Fatal(err)
					}
					if tok := c.Subscribe("mem/"+id, 1, func(paho.Client, paho.Message) {}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
						b.Fatal(tok.Error())
					}
				}
				rss1, heap1 := memNow()
				if f := os.Getenv("CONNKIT_MEM_PROFILE"); f != "" {
					out, _ := os.Create(f)
					pprof.Lookup("heap").WriteTo(out, 0)
					out.Close()
					g, _ := os.Create(f + ".goroutines")
					pprof.Lookup("goroutine").WriteTo(g, 1)
					g.Close()
					var ms runtime.MemStats
					runtime.ReadMemStats(&ms)
					b.Logf("goroutines %d, stacks %d MB, heap %d MB", runtime.NumGoroutine(), ms.StackInuse>>20, ms.HeapInuse>>20)
				}
				b.ReportMetric(float64(rss1-rss0)/float64(n), "rss-bytes/conn")
				b.ReportMetric(float64(heap1-heap0)/float64(n), "heap+stack-bytes/conn")
				b.Logf("%d connections: RSS +%d MB, heap and stacks +%d MB", n, (rss1-rss0)>>20, (heap1-heap0)>>20)
				m.Close()
			}
		})
	}
}

// memNow returns the process's resident memory and its Go heap and
// stacks in use, after a collection.
func memNow() (rss, heap int64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, _ := os.ReadFile("/proc/self/statm")
	var pages, res int64
	fmt.Sscan(string(b), &pages, &res)
	return res * int64(os.Getpagesize()), int64(ms.HeapInuse + ms.StackInuse)
}
