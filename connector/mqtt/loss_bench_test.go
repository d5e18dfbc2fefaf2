package mqtt

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// BenchmarkNoLoss is issue 23's measure: a publisher at 10 QoS 1
// messages a second through connkit and a subscribing view, both through
// a proxy to a mosquitto with persistence, over an outage 20 s into the
// run: (a) a broker restart (stopped for 20 s; dialed directly), (b) a
// 20 s partition (dials time out), (c) a
// restart of the publishing process while the broker is away. Each with
// the session kept, the queue and clientStatePath on ("kept"), and as
// before them ("clean": clean sessions, no queue). Lost counts what the
// publisher was asked to send and the subscriber never got; duplicates
// are allowed at QoS 1. CONNKIT_LOSS_SECONDS shortens the run (default
// 60). Long: make bench runs it once.
func BenchmarkNoLoss(b *testing.B) {
	run := 60 * time.Second
	if s, err := strconv.Atoi(os.Getenv("CONNKIT_LOSS_SECONDS")); err == nil && s > 0 {
		run = time.Duration(s) * time.Second
	}
	for _, sc := range []string{"broker-restart", "partition", "process-restart"} {
		for _, kept := range []bool{true, false} {
			mode := map[bool]string{true: "kept", false: "clean"}[kept]
			b.Run(sc+"/"+mode, func(b *testing.B) {
				for b.Loop() {
					r := lossRun(b, sc, kept, run)
					b.ReportMetric(float64(r.sent), "sent")
					b.ReportMetric(float64(r.lost), "lost")
					b.ReportMetric(float64(r.dups), "duplicates")
					b.ReportMetric(r.back.Seconds(), "s-to-subscriber-back")
				}
			})
		}
	}
}

type lossResult struct {
	sent, lost, dups int
	back             time.Duration // from the peer back to the subscriber connected
}

func lossManager(tb testing.TB) *connection.Manager {
	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg,
		DialTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func lossRun(b *testing.B, scenario string, kept bool, run time.Duration) lossResult {
	br := connectortest.NewBroker(b)
	br.Persist()
	br.Start()
	defer br.Stop()
	p := connectortest.NewProxy(b, br.Addr())
	server := "tcp://" + p.Addr()
	if scenario == "broker-restart" {
		// To the broker itself: a proxy would accept while it is away
		// and close, which is not what a stopped broker does.
		server = "tcp://" + br.Addr()
	}
	tag := fmt.Sprintf("%s-%v-%d", scenario, kept, time.Now().UnixNano())
	subProps := map[string]any{"server": server, "clientid": "sub-" + tag, "keepAlive": 5}
	pubProps := map[string]any{"server": server, "clientid": "pub-" + tag, "keepAlive": 5}
	if kept {
		subProps["enableClientSession"] = true
		pubProps["clientStatePath"] = b.TempDir()
	} else {
		pubProps["publishBuffer"] = 0
	}
	ms := lossManager(b)
	defer ms.Close()
	mp := lossManager(b)
	defer func() { mp.Close() }()
	for _, c := range []struct {
		m     *connection.Manager
		id    string
		props map[string]any
	}{{ms, "sub", subProps}, {mp, "pub", pubProps}} {
		if _, err := c.m.Create(context.Background(), connection.Spec{ID: c.id, Type: Type, Props: c.props}); err != nil {
			b.Fatal(err)
		}
		connectortest.WaitState(b, c.m, c.id, connection.StateConnected, 10*time.Second)
	}
	var mu sync.Mutex
	got := map[string]int{}
	sub, err := Client(ms.Attach(context.Background(), "sub", "rule/source"))
	if err != nil {
		b.Fatal(err)
	}
	if tok := sub.Subscribe("loss/#", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got[string(m.Payload())]++
		mu.Unlock()
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	var pmu sync.Mutex
	pub, err := Client(mp.Attach(context.Background(), "pub", "rule/sink"))
	if err != nil {
		b.Fatal(err)
	}
	sent := 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			pmu.Lock()
			if pub != nil {
				pub.Publish("loss/x", 1, false, strconv.Itoa(sent))
				sent++
			}
			pmu.Unlock()
		}
	}()
	time.Sleep(run / 3) // the run itself: a third before the outage
	var healed time.Time
	switch scenario {
	case "broker-restart":
		br.Terminate()
		time.Sleep(20 * time.Second)
		br.Start()
		healed = time.Now()
	case "partition":
		p.Blackhole()
		time.Sleep(20 * time.Second)
		p.Restore()
		healed = time.Now()
	case "process-restart":
		p.Cut()
		time.Sleep(5 * time.Second)
		pmu.Lock()
		pub = nil
		mp.Close() // the process ends: what it queued is on disk, or gone
		pmu.Unlock()
		time.Sleep(5 * time.Second)
		mp = lossManager(b)
		if _, err := mp.Create(context.Background(), connection.Spec{ID: "pub", Type: Type, Props: pubProps}); err != nil {
			b.Fatal(err)
		}
		np, err := Client(mp.Attach(context.Background(), "pub", "rule/sink"))
		if err != nil {
			b.Fatal(err)
		}
		pmu.Lock()
		pub = np
		pmu.Unlock()
		time.Sleep(10 * time.Second)
		p.Restore()
		healed = time.Now()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if in, _ := ms.Get("sub"); in.State == connection.StateConnected || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	back := time.Since(healed)
	time.Sleep(time.Until(healed.Add(run - run/3 - 20*time.Second))) // the rest of the run
	close(stop)
	<-done
	count := func() (distinct, all int) {
		mu.Lock()
		defer mu.Unlock()
		for i := range sent {
			if n := got[strconv.Itoa(i)]; n > 0 {
				distinct++
				all += n
			}
		}
		return
	}
	// Let what is owed arrive.
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if d, _ := count(); d == sent {
			break
		}
	}
	d, all := count()
	b.Logf("%s/%v: sent %d, lost %d, duplicates %d, subscriber back %v after the peer", scenario, kept, sent, sent-d, all-d, back.Round(time.Millisecond))
	return lossResult{sent: sent, lost: sent - d, dups: all - d, back: back}
}
