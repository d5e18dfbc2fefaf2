package mqtt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

var ctx = context.Background()

func newManager(t testing.TB, logs io.Writer) *connection.Manager {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	m, err := connection.New(ctx, memory.New(), &connection.Options{
		Registry: reg, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, DialTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func create(t *testing.T, m *connection.Manager, id string, props map[string]any) {
	t.Helper()
	if _, err := m.Create(ctx, connection.Spec{ID: id, Type: Type, Props: props}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, id, connection.StateConnected, 10*time.Second)
}

func attach(t *testing.T, m *connection.Manager, id, ref string) paho.Client {
	t.Helper()
	c, err := Client(m.Attach(ctx, id, ref))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bare connects a plain paho client, outside connkit.
func bare(t *testing.T, addr string) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(randomID("bare-")).SetProtocolVersion(4).SetAutoReconnect(false)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("bare client: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// inbox collects messages for a test to wait on.
type inbox struct {
	mu   sync.Mutex
	msgs []string
}

func (b *inbox) handler(_ paho.Client, m paho.Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, string(m.Payload()))
}

func (b *inbox) has(payload string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.msgs {
		if m == payload {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wait(t *testing.T, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("token: %v", tok.Error())
	}
}

// TestThousandRefsOneSession: 1,000 refs on one connection are one client
// session on the broker, as the broker itself counts them.
func TestThousandRefsOneSession(t *testing.T) {
	b := connectortest.NewBroker(t)
	b.Start()
	watcher := bare(t, b.Addr())
	var maxSeen, last atomic.Int64
	wait(t, watcher.Subscribe("$SYS/broker/clients/connected", 0, func(_ paho.Client, msg paho.Message) {
		n, _ := strconv.ParseInt(string(msg.Payload()), 10, 64)
		last.Store(n)
		if n > maxSeen.Load() {
			maxSeen.Store(n)
		}
	}))
	m := newManager(t, nil)
	create(t, m, "bus", map[string]any{"server": "tcp://" + b.Addr()})
	var in inbox
	for i := range 1000 {
		c := attach(t, m, "bus", fmt.Sprintf("rule%d/source", i))
		if i%100 == 0 {
			wait(t, c.Subscribe(fmt.Sprintf("t/%d", i), 0, in.handler))
		}
	}
	if info, _ := m.Get("bus"); info.RefCount != 1000 {
		t.Fatalf("refCount %d", info.RefCount)
	}
	// The broker publishes its count every second: the watcher and our one
	// session make 2.
	last.Store(0)
	waitFor(t, "the broker to count the clients", 10*time.Second, func() bool { return last.Load() != 0 })
	if got := last.Load(); got != 2 {
		t.Errorf("broker counts %d connected clients, want 2 (the watcher and one shared session)", got)
	}
	if got := maxSeen.Load(); got > 2 {
		t.Errorf("the broker saw up to %d clients at once", got)
	}
}

// TestPublishReachesOtherRef and the per-topic ref count.
func TestSharedSubscriptions(t *testing.T) {
	addr := connectortest.Env(t, "CONNKIT_MQTT_ADDR")
	m := newManager(t, nil)
	create(t, m, "bus", map[string]any{"server": "tcp://" + addr})
	topic := randomID("shared/")
	var a, b inbox
	ca := attach(t, m, "bus", "ruleA/source")
	cb := attach(t, m, "bus", "ruleB/source")
	sink := attach(t, m, "bus", "ruleC/sink")
	wait(t, ca.Subscribe(topic, 1, a.handler))
	wait(t, cb.Subscribe(topic, 1, b.handler))

	wait(t, sink.Publish(topic, 1, false, "one"))
	waitFor(t, "both refs to receive one", 5*time.Second, func() bool { return a.has("one") && b.has("one") })

	// A detaches: B keeps receiving, A gets nothing more.
	m.Detach("bus", "ruleA/source")
	wait(t, sink.Publish(topic, 1, false, "two"))
	waitFor(t, "B to receive two", 5*time.Second, func() bool { return b.has("two") })
	// A third message, so that a late delivery to A of "two" would have
	// arrived by the time B has "three" (QoS 1 keeps order on one session).
	wait(t, sink.Publish(topic, 1, false, "three"))
	waitFor(t, "B to receive three", 5*time.Second, func() bool { return b.has("three") })
	if a.has("two") || a.has("three") {
		t.Error("a detached ref still receives")
	}
	// B unsubscribes: the broker subscription goes, so a bare publisher's
	// message reaches no one.
	var sync inbox
	wait(t, sink.Subscribe(topic+"/sync", 1, sync.handler))
	wait(t, cb.Unsubscribe(topic))
	c := bare(t, addr)
	wait(t, c.Publish(topic, 1, false, "four"))
	wait(t, c.Publish(topic+"/sync", 1, false, "sync"))
	// One publisher, one session: had "four" been routed to the session,
	// it would have arrived before "sync".
	waitFor(t, "the sync message", 5*time.Second, func() bool { return sync.has("sync") })
	if b.has("four") {
		t.Error("an unsubscribed ref still receives")
	}
	if pub := sink.Publish(topic, 0, false, "x"); pub.Error() != nil {
		t.Errorf("publish: %v", pub.Error())
	}
}

// TestBrokerRestart: the broker is killed and restarted while one rule
// publishes and another subscribes through the shared connection. The
// status goes disconnected, then connected; the subscription is restored;
// publishing works again. The time from broker back to connected is
// reported.
func TestBrokerRestart(t *testing.T) {
	b := connectortest.NewBroker(t)
	b.Start()
	m := newManager(t, nil)
	create(t, m, "bus", map[string]any{"server": "tcp://" + b.Addr(), "keepAlive": 2})
	var in inbox
	sub := attach(t, m, "bus", "rule1/source")
	pub := attach(t, m, "bus", "rule2/sink")
	wait(t, sub.Subscribe("restart/t", 1, in.handler))

	// rule2 publishes every 10ms, whatever the broker does.
	stop := make(chan struct{})
	done := make(chan struct{})
	var sent, failed atomic.Int64
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			tok := pub.Publish("restart/t", 1, false, fmt.Sprintf("m%d", i))
			if tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
				sent.Add(1)
			} else {
				failed.Add(1)
			}
		}
	}()
	waitFor(t, "messages before the kill", 5*time.Second, func() bool { return sent.Load() >= 5 })

	b.Stop()
	connectortest.WaitState(t, m, "bus", connection.StateDisconnected, 10*time.Second)
	if sub.IsConnected() {
		t.Error("the view reports connected while the broker is down")
	}
	waitFor(t, "publishes to fail while down", 5*time.Second, func() bool { return failed.Load() > 0 })
	b.Start()
	back := time.Now()
	connectortest.WaitState(t, m, "bus", connection.StateConnected, 15*time.Second)
	reconnect := time.Since(back)
	sentAtReconnect := sent.Load()
	// The restored subscription receives what rule2 publishes now.
	var mark string
	waitFor(t, "a message published after the restart to arrive", 10*time.Second, func() bool {
		if sent.Load() <= sentAtReconnect+3 {
			return false
		}
		mark = fmt.Sprintf("m%d", sent.Load()+failed.Load()-2)
		return in.has(mark)
	})
	close(stop)
	<-done
	t.Logf("connected again %v after the broker came back; %d publishes failed while it was down, %d went through",
		reconnect.Round(time.Millisecond), failed.Load(), sent.Load())
	if reconnect > 5*time.Second {
		t.Errorf("reconnecting took %v, over the 5s bound", reconnect)
	}
}

// TestCheckKeepsLiveSession: a check with the live session's own client id
// must not kick it off the broker.
func TestCheckKeepsLiveSession(t *testing.T) {
	addr := connectortest.Env(t, "CONNKIT_MQTT_ADDR")
	m := newManager(t, nil)
	props := map[string]any{"server": "tcp://" + addr, "clientid": randomID("live-")}
	create(t, m, "bus", props)
	before, _ := m.Get("bus")
	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	ch := check.New(&check.Options{Registry: reg})
	for range 3 {
		if _, err := ch.Sink(ctx, check.Request{Type: Type, Props: props}); err != nil {
			t.Fatal(err)
		}
	}
	// Had a probe used the live id, the broker would have dropped the
	// session: a round trip through it shows it is still the same.
	c := attach(t, m, "bus", "r")
	var in inbox
	wait(t, c.Subscribe("probe/t", 1, in.handler))
	wait(t, c.Publish("probe/t", 1, false, "still here"))
	waitFor(t, "the live session to deliver", 5*time.Second, func() bool { return in.has("still here") })
	after, _ := m.Get("bus")
	if after.State != connection.StateConnected || !after.Since.Equal(before.Since) {
		t.Errorf("the live session changed state: %+v -> %+v", before.Status, after.Status)
	}
}

// TestReleasedViewIsDone: a rule restarts, so two attaches hold one ref
// name. When the old one is released, its view fails every operation at
// once with ErrDetached and receives nothing more, while the new one works
// on. After the Manager closes, a view still held says so.
func TestReleasedViewIsDone(t *testing.T) {
	addr := connectortest.Env(t, "CONNKIT_MQTT_ADDR")
	m := newManager(t, nil)
	create(t, m, "bus", map[string]any{"server": "tcp://" + addr})
	topic := randomID("scope/")
	oldH, err := m.Hold(ctx, "bus", "rule/source")
	if err != nil {
		t.Fatal(err)
	}
	newH, err := m.Hold(ctx, "bus", "rule/source")
	if err != nil {
		t.Fatal(err)
	}
	oldC, _ := Client(oldH.Client(), nil)
	newC, _ := Client(newH.Client(), nil)
	var oldIn, newIn inbox
	wait(t, oldC.Subscribe(topic+"/a", 1, oldIn.handler))
	wait(t, oldC.Subscribe(topic+"/b", 1, oldIn.handler))
	wait(t, newC.Subscribe(topic+"/a", 1, newIn.handler))

	oldH.Close()
	if in, _ := m.Get("bus"); in.RefCount != 1 {
		t.Errorf("refCount %d after the old attach was released, want 1", in.RefCount)
	}
	if oldC.IsConnected() || oldC.IsConnectionOpen() {
		t.Error("a released view says it is connected")
	}
	for name, tok := range map[string]paho.Token{
		"Publish":           oldC.Publish(topic+"/a", 1, false, "x"),
		"Subscribe":         oldC.Subscribe(topic+"/c", 1, oldIn.handler),
		"SubscribeMultiple": oldC.SubscribeMultiple(map[string]byte{topic + "/d": 1}, oldIn.handler),
		"Unsubscribe":       oldC.Unsubscribe(topic + "/a"),
	} {
		if !tok.WaitTimeout(time.Second) || !errors.Is(tok.Error(), connector.ErrDetached) {
			t.Errorf("%s on a released view: %v, want ErrDetached", name, tok.Error())
		}
	}
	c := bare(t, addr)
	wait(t, c.Publish(topic+"/b", 1, false, "b1"))
	wait(t, c.Publish(topic+"/a", 1, false, "a1"))
	// One publisher, one session, QoS 1: had b1 been delivered to the old
	// view, it would have been before a1 reached the new one.
	waitFor(t, "the new view to receive", 5*time.Second, func() bool { return newIn.has("a1") })
	if oldIn.has("a1") || oldIn.has("b1") {
		t.Errorf("a released view still receives: %v", oldIn.msgs)
	}
	wait(t, newC.Publish(topic+"/a", 1, false, "a2"))
	waitFor(t, "the new view to receive its own", 5*time.Second, func() bool { return newIn.has("a2") })

	if err := oldC.Connect().Error(); !errors.Is(err, connector.ErrDetached) {
		t.Errorf("Connect on a released view: %v, want ErrDetached", err)
	}
	m.Close()
	if tok := newC.Publish(topic+"/a", 0, false, "x"); !errors.Is(tok.Error(), ErrClosed) {
		t.Errorf("publish after the Manager closed: %v, want ErrClosed", tok.Error())
	}
	newH.Close()
	if tok := newC.Publish(topic+"/a", 0, false, "x"); !errors.Is(tok.Error(), connector.ErrDetached) {
		t.Errorf("publish after release: %v, want ErrDetached", tok.Error())
	}
}

// TestAttachOfAnotherType: the typed Attach refuses a connection of
// another type, and leaves no ref that would block its update or delete.
func TestAttachOfAnotherType(t *testing.T) {
	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	reg.Register("fake", connectortest.NewFake())
	m, err := connection.New(ctx, memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Create(ctx, connection.Spec{ID: "db", Type: "fake", Props: map[string]any{"addr": "p"}}); err != nil {
		t.Fatal(err)
	}
	_, err = Attach(ctx, m, "db", "r1/sink")
	if !errors.Is(err, connection.ErrInvalidArgument) || !strings.Contains(err.Error(), "cannot be attached here") {
		t.Fatalf("Attach of a fake connection: %v", err)
	}
	if in, _ := m.Get("db"); in.RefCount != 0 {
		t.Errorf("a refused attach left refs %v", in.Refs)
	}
	if err := m.Delete(ctx, "db", connection.Tag{}); err != nil {
		t.Errorf("delete after a refused attach: %v", err)
	}
}

// TestPasswordInServerURL: paho logs in with a password in the server
// URL's user info, so it is a secret like the password prop: masked in
// what the Manager reports, kept by a PUT of the mask, and bound to the
// server.
func TestPasswordInServerURL(t *testing.T) {
	authAddr := connectortest.Env(t, "CONNKIT_MQTT_AUTH_ADDR")
	user, pw := connectortest.Env(t, "CONNKIT_MQTT_USER"), connectortest.Env(t, "CONNKIT_MQTT_PASSWORD")
	logs := &syncWriter{}
	m := newManager(t, logs)
	create(t, m, "bus", map[string]any{"server": "tcp://" + user + ":" + pw + "@" + authAddr})
	in, _ := m.Get("bus")
	if strings.Contains(fmt.Sprint(in.Props), pw) || !strings.Contains(in.Props["server"].(string), "******") {
		t.Fatalf("the server's password is shown: %v", in.Props)
	}
	if _, err := m.Update(ctx, connection.Spec{ID: "bus", Type: Type, Props: in.Props}, connection.Tag{}); err != nil {
		t.Fatalf("PUT of the masked server: %v", err)
	}
	connectortest.WaitState(t, m, "bus", connection.StateConnected, 10*time.Second)
	other := strings.Replace(in.Props["server"].(string), authAddr, "127.0.0.1:1", 1)
	if _, err := m.Update(ctx, connection.Spec{ID: "bus", Type: Type, Props: map[string]any{"server": other}}, connection.Tag{}); !errors.Is(err, connection.ErrInvalidArgument) {
		t.Errorf("the masked server moved elsewhere: %v, want invalid_argument", err)
	}
	if strings.Contains(logs.String(), pw) {
		t.Errorf("the password is in the log:\n%s", logs.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLastActivity: a publish marks the publishing connection active, and
// the message delivered to a subscription marks the subscribing one.
func TestLastActivity(t *testing.T) {
	addr := connectortest.Env(t, "CONNKIT_MQTT_ADDR")
	m := newManager(t, nil)
	create(t, m, "pub", map[string]any{"server": "tcp://" + addr})
	create(t, m, "sub", map[string]any{"server": "tcp://" + addr})
	topic := randomID("activity/")
	var got inbox
	wait(t, attach(t, m, "sub", "rule1/source").Subscribe(topic, 1, got.handler))
	pub := attach(t, m, "pub", "rule2/sink")
	for _, id := range []string{"pub", "sub"} {
		if in, _ := m.Get(id); !in.LastActivityAt.IsZero() {
			t.Fatalf("%s: LastActivityAt %v before any message", id, in.LastActivityAt)
		}
	}
	wait(t, pub.Publish(topic, 1, false, "one"))
	waitFor(t, "the message", 5*time.Second, func() bool { return got.has("one") })
	for _, id := range []string{"pub", "sub"} {
		waitFor(t, id+"'s LastActivityAt", 5*time.Second, func() bool {
			in, _ := m.Get(id)
			return !in.LastActivityAt.IsZero() && time.Since(in.LastActivityAt).Abs() < 2*time.Second
		})
	}
}
