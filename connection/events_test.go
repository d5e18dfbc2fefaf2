package connection_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// next reads one event within a deadline.
func next(t *testing.T, ch <-chan connection.Event) connection.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the subscription ended")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return connection.Event{}
}

// until reads events until one of kind for id; it fails past 5s.
func until(t *testing.T, ch <-chan connection.Event, kind connection.EventKind, id string, state connection.State) connection.Event {
	t.Helper()
	for {
		ev := next(t, ch)
		if ev.Kind == kind && ev.ID == id && (state == "" || ev.Status != nil && ev.Status.State == state) {
			return ev
		}
	}
}

// TestEventsLifecycle: every change of a connection is an event, in
// order, numbered one by one, and no status event follows the delete.
func TestEventsLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs := e.m.Subscribe(sctx, connection.SubscribeOptions{})
	if _, err := e.m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
	waitState(t, e.m, "a", connection.StateConnected)
	attachFake(t, e.m, "a", "r1")
	e.m.Detach("a", "r1")
	if _, err := e.m.Update(ctx, spec("a", map[string]any{"addr": "p2"}), connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	waitState(t, e.m, "a", connection.StateConnected)
	if err := e.m.Delete(ctx, "a", connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	var got []string
	var seq uint64
	for {
		ev := next(t, evs)
		if seq != 0 && ev.Seq != seq+1 {
			t.Fatalf("event %+v after seq %d", ev, seq)
		}
		seq = ev.Seq
		if ev.ID != "a" || ev.Type != "fake" || ev.Time.IsZero() {
			t.Fatalf("event %+v", ev)
		}
		s := string(ev.Kind)
		if ev.Status != nil {
			s += ":" + string(ev.Status.State)
		}
		if ev.Ref != "" {
			s += ":" + ev.Ref
		}
		got = append(got, s)
		if ev.Kind == connection.EventDeleted {
			break
		}
	}
	want := "created:connecting status:connected attached:r1 detached:r1 updated:connecting status:connected deleted"
	if strings.Join(got, " ") != want {
		t.Fatalf("events:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if e.m.LastSeq() != seq {
		t.Errorf("LastSeq %d, last event %d", e.m.LastSeq(), seq)
	}
}

// TestEventsResume: a subscriber resumes from a retained sequence number;
// from one no longer retained, or from the future (a restart), it gets
// reset first. A filter keeps one connection's events.
func TestEventsResume(t *testing.T) {
	e := newEnv(t, nil)
	for _, id := range []string{"a", "b"} {
		if _, err := e.m.Create(ctx, spec(id, nil)); err != nil {
			t.Fatal(err)
		}
		waitState(t, e.m, id, connection.StateConnected)
	}
	mark := e.m.LastSeq()
	attachFake(t, e.m, "a", "r")
	attachFake(t, e.m, "b", "r")
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs := e.m.Subscribe(sctx, connection.SubscribeOptions{From: mark + 1, Connection: "b"})
	if ev := next(t, evs); ev.Kind != connection.EventAttached || ev.ID != "b" || ev.Seq != mark+2 {
		t.Fatalf("resumed with %+v, want b's attach at %d", ev, mark+2)
	}
	// Push the window past mark.
	for range 1100 {
		e.m.Detach("a", "r")
		attachFake(t, e.m, "a", "r")
	}
	old := e.m.Subscribe(sctx, connection.SubscribeOptions{From: mark + 1})
	if ev := next(t, old); ev.Kind != connection.EventReset || ev.Seq != e.m.LastSeq() {
		t.Fatalf("resumed from outside the window with %+v, want reset at %d", ev, e.m.LastSeq())
	}
	future := e.m.Subscribe(sctx, connection.SubscribeOptions{From: e.m.LastSeq() + 100})
	if ev := next(t, future); ev.Kind != connection.EventReset {
		t.Fatalf("resumed from the future with %+v, want reset", ev)
	}
	// The last 1024 are retained.
	last := e.m.LastSeq()
	win := e.m.Subscribe(sctx, connection.SubscribeOptions{From: last - 1023})
	if ev := next(t, win); ev.Kind == connection.EventReset || ev.Seq != last-1023 {
		t.Fatalf("resumed from inside the window with %+v", ev)
	}
}

// TestSlowSubscriberLags: a subscriber that does not read blocks neither
// the Manager nor another subscriber; it gets lagged, then what follows.
func TestSlowSubscriberLags(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
	waitState(t, e.m, "a", connection.StateConnected)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	slow := e.m.Subscribe(sctx, connection.SubscribeOptions{Buffer: 4})
	fast := e.m.Subscribe(sctx, connection.SubscribeOptions{})
	done := make(chan int)
	go func() {
		n := 0
		for ev := range fast {
			if ev.Kind == connection.EventAttached || ev.Kind == connection.EventDetached {
				n++
			}
			if ev.Kind == connection.EventDetached && ev.Ref == "r99" {
				break
			}
		}
		done <- n
	}()
	for i := range 100 {
		attachFake(t, e.m, "a", fmt.Sprint("r", i))
		e.m.Detach("a", fmt.Sprint("r", i))
	}
	if n := <-done; n != 200 {
		t.Fatalf("the fast subscriber got %d events, want 200", n)
	}
	// The slow one gets what fitted its buffer, lagged, and what
	// followed, in order, then the events after it reads again.
	attachFake(t, e.m, "a", "after")
	end := e.m.LastSeq()
	var seq uint64
	n, lagged := 0, 0
	for {
		ev := next(t, slow)
		if ev.Seq <= seq {
			t.Fatalf("event %d after %d", ev.Seq, seq)
		}
		seq = ev.Seq
		n++
		if ev.Kind == connection.EventLagged {
			lagged++
		}
		if ev.Seq == end {
			break
		}
	}
	if lagged == 0 || n > 20 {
		t.Fatalf("the slow subscriber got %d events, %d of them lagged", n, lagged)
	}
	e.m.Detach("a", "after")
	if ev := next(t, slow); ev.Kind != connection.EventDetached || ev.Seq != end+1 {
		t.Fatalf("once read up: %+v", ev)
	}
}

// TestEventsEndAtClose: a subscription ends when the Manager closes, and
// its goroutine with it (goleak checks).
func TestEventsEndAtClose(t *testing.T) {
	e := newEnv(t, nil)
	evs := e.m.Subscribe(ctx, connection.SubscribeOptions{})
	e.m.Close()
	select {
	case _, ok := <-evs:
		if ok {
			for range evs {
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the subscription did not end at Close")
	}
	if _, ok := <-e.m.Subscribe(ctx, connection.SubscribeOptions{}); ok {
		t.Fatal("a subscription after Close got an event")
	}
}

// TestWaitConnected: it returns once the connection is up; on a deadline
// it says the last status; an unknown id is not_found.
func TestWaitConnected(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SetUp("p1", false)
	if _, err := e.m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err := e.m.WaitConnected(wctx, "a")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("WaitConnected with the peer down: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- e.m.WaitConnected(ctx, "a") }()
	e.fake.SetUp("p1", true)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitConnected did not return once connected")
	}
	wantCode(t, e.m.WaitConnected(ctx, "nope"), connection.CodeNotFound, connection.ErrNotFound)
}

// TestAttemptsAndHistory: while redialing, the status counts the failed
// dials and says when the next is due; the history keeps the last 50
// transitions.
func TestAttemptsAndHistory(t *testing.T) {
	fake := connectortest.NewFake()
	reg := &registry.Registry{}
	reg.Register("fake", fake)
	m, err := connection.New(ctx, memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler),
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, WatchInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fake.SetUp("p1", false)
	if _, err := m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "3 attempts", func() bool { in, _ := m.Get("a"); return in.Attempts >= 3 })
	in, _ := m.Get("a")
	if in.State != connection.StateDisconnected || in.NextAttemptAt.IsZero() || in.NextAttemptAt.Before(in.Since) {
		t.Fatalf("redialing: %+v", in.Status)
	}
	for i := range 61 {
		fake.SetUp("p1", i%2 == 0)
		want := connection.StateDisconnected
		if i%2 == 0 {
			want = connection.StateConnected
		}
		waitState(t, m, "a", want)
	}
	in, _ = m.Get("a")
	if in.Attempts != 0 || !in.NextAttemptAt.IsZero() {
		t.Errorf("connected: %+v", in.Status)
	}
	h, err := m.History("a")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 50 {
		t.Fatalf("history of %d transitions, want the last 50", len(h))
	}
	for i := 1; i < len(h); i++ {
		if h[i].Since.Before(h[i-1].Since) || h[i].State == h[i-1].State && h[i].Err == h[i-1].Err {
			t.Fatalf("history %d: %+v after %+v", i, h[i], h[i-1])
		}
	}
	if h[len(h)-1].State != in.State {
		t.Errorf("last transition %+v, status %+v", h[len(h)-1], in.Status)
	}
	if _, err := m.History("nope"); !errors.Is(err, connection.ErrNotFound) {
		t.Errorf("history of an unknown id: %v", err)
	}
}

// TestRetriesLoggedAtBoundedRate: a link that keeps failing the same way
// is logged again every interval, not at every attempt, and not never.
func TestRetriesLoggedAtBoundedRate(t *testing.T) {
	defer connection.SetRetryLogEvery(100 * time.Millisecond)()
	e := newEnv(t, nil)
	e.fake.SetUp("p1", false)
	start := time.Now()
	if _, err := e.m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second line", func() bool { return strings.Count(e.logs.String(), "still disconnected") >= 2 })
	e.m.Close()
	took := time.Since(start)
	lines := strings.Count(e.logs.String(), "still disconnected")
	in, _ := e.m.Get("a")
	if max := int(took/(100*time.Millisecond)) + 1; lines > max {
		t.Errorf("%d lines in %v, want at most %d", lines, took, max)
	}
	if in.Attempts < 3*lines {
		t.Errorf("%d attempts and %d lines: a line per attempt", in.Attempts, lines)
	}
	if !strings.Contains(e.logs.String(), "attempts=") {
		t.Errorf("the line does not say the attempts: %s", e.logs.String())
	}
}

// TestReconnect: a reconnect redials at once, even during a long
// backoff, and the attached clients keep working.
func TestReconnect(t *testing.T) {
	fake := connectortest.NewFake()
	reg := &registry.Registry{}
	reg.Register("fake", fake)
	m, err := connection.New(ctx, memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler),
		MinBackoff: time.Hour, MaxBackoff: time.Hour, WatchInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fake.SetUp("p1", true)
	if _, err := m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
	waitState(t, m, "a", connection.StateConnected)
	cl, err := m.Attach(ctx, "a", "r")
	if err != nil {
		t.Fatal(err)
	}
	n := fake.Dials("p1")
	if err := m.Reconnect(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a redial", func() bool { return fake.Dials("p1") == n+1 })
	waitState(t, m, "a", connection.StateConnected)
	if err := cl.(*connectortest.FakeClient).Use(); err != nil {
		t.Errorf("the client after a reconnect: %v", err)
	}
	// Down, with an hour of backoff ahead: the reconnect does not wait.
	fake.SetUp("p1", false)
	waitState(t, m, "a", connection.StateDisconnected)
	fake.SetUp("p1", true)
	if err := m.Reconnect(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	waitState(t, m, "a", connection.StateConnected)
	wantCode(t, m.Reconnect(ctx, "nope"), connection.CodeNotFound, connection.ErrNotFound)
}

// varying is a connection type whose every dial fails the same way with
// a different text, as a reset from a new local port does.
type varying struct{ n atomic.Int64 }

func (v *varying) Schema() *connector.Schema {
	return &connector.Schema{Fields: []connector.Field{{Name: "addr", Kind: connector.String}}}
}
func (v *varying) Open(connector.Props, connector.Events) (connector.Conn, error) {
	return &varyingConn{v}, nil
}

type varyingConn struct{ v *varying }

func (c *varyingConn) Connect(context.Context) error {
	return fmt.Errorf("read tcp 127.0.0.1:%d->127.0.0.1:1883: %w", 40000+c.v.n.Add(1), syscall.ECONNRESET)
}
func (c *varyingConn) Client(string) any { return nil }
func (c *varyingConn) Close() error      { return nil }

// TestSameFailureDifferentText: retries that fail the same way with a
// different text each are one transition, one event and one log line,
// not one per attempt.
func TestSameFailureDifferentText(t *testing.T) {
	v := &varying{}
	reg := &registry.Registry{}
	reg.Register("varying", v)
	logs := &syncBuffer{}
	m, err := connection.New(ctx, memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, WatchInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs := m.Subscribe(sctx, connection.SubscribeOptions{})
	if _, err := m.Create(ctx, connection.Spec{ID: "a", Type: "varying", Props: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "20 attempts", func() bool { in, _ := m.Get("a"); return in.Attempts >= 20 })
	// Events up to a marker: a's statuses come before it.
	if _, err := m.Create(ctx, connection.Spec{ID: "marker", Type: "varying", Props: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	statuses := 0
	for ev := next(t, evs); ev.ID != "marker"; ev = next(t, evs) {
		if ev.Kind == connection.EventStatus {
			statuses++
		}
	}
	m.Close()
	h, _ := m.History("a")
	if statuses != 1 || len(h) != 2 || strings.Count(logs.String(), "connection=a type=varying err=") != 1 {
		t.Fatalf("%d status events, %d transitions, log:\n%s", statuses, len(h), logs)
	}
	// The status still shows the last text.
	if in, _ := m.Get("a"); !strings.Contains(in.Err, "connection reset") {
		t.Errorf("status %+v", in.Status)
	}
}

// TestResumeAfterRestart: the numbers of a new Manager start above an
// earlier one's, so a subscriber resuming from one of those is reset.
func TestResumeAfterRestart(t *testing.T) {
	e := newEnv(t, nil)
	for _, id := range []string{"a", "b", "c"} {
		if _, err := e.m.Create(ctx, spec(id, nil)); err != nil {
			t.Fatal(err)
		}
	}
	last := e.m.LastSeq()
	e.m.Close()
	m2 := e.open(t)
	if m2.LastSeq() <= last {
		t.Fatalf("the new Manager starts at %d, the old one ended at %d", m2.LastSeq(), last)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if ev := next(t, m2.Subscribe(sctx, connection.SubscribeOptions{From: last - 1})); ev.Kind != connection.EventReset {
		t.Fatalf("resumed from before the restart with %+v, want reset", ev)
	}
}

// TestOneEventPerOutage: an outage whose dials fail otherwise than the
// loss did is one disconnected event, whose Previous is connected, and
// the return is one connected event whose Previous is disconnected.
func TestOneEventPerOutage(t *testing.T) {
	e := newEnv(t, nil)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs := e.m.Subscribe(sctx, connection.SubscribeOptions{Connection: "a"})
	if _, err := e.m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
	until(t, evs, connection.EventStatus, "a", connection.StateConnected)
	e.fake.SetUp("p1", false) // lost ("went away"), then dials refused
	dials := e.fake.Dials("p1")
	waitFor(t, "three failed dials", func() bool { return e.fake.Dials("p1") >= dials+3 })
	e.fake.SetUp("p1", true)
	e.m.Reconnect(ctx, "a")
	var got []string
	for {
		ev := next(t, evs)
		if ev.Kind != connection.EventStatus {
			continue
		}
		got = append(got, string(ev.Previous)+">"+string(ev.Status.State))
		if ev.Status.State == connection.StateConnected {
			break
		}
	}
	if want := []string{"connected>disconnected", "disconnected>connected"}; !slices.Equal(got, want) {
		t.Fatalf("status events %v, want %v", got, want)
	}
}
