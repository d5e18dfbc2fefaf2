package connectortest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/secret"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// Harness describes a connector type and a real peer for Run.
type Harness struct {
	// Name and Type are the type under test.
	Name string
	Type connector.Type
	// Addr is the literal IP:port of a live peer (such as 127.0.0.1:1883,
	// never a name): the suite puts its Proxy in front of it, and builds
	// dial policies from it.
	Addr string
	// Props returns props that reach a peer at addr with valid
	// credentials.
	Props func(addr string) map[string]any
	// BadAuth, if set, returns props for the live peer whose credentials
	// it refuses.
	BadAuth func() map[string]any
	// Invalid lists props that must be refused, and the fields named.
	Invalid []Invalid
	// Secrets are secret values found in what Props and BadAuth return;
	// none may appear in any Info, error or log line.
	Secrets []string
	// Unreachable, if set, returns props that cannot connect, for a type
	// where that is not a closed port or a silent peer (a listener whose
	// address another program holds). Unset, the suite dials a closed port
	// and a peer that never answers.
	Unreachable func(t *testing.T) map[string]any
	// StartLate, if set, returns an address where no peer runs yet and a
	// function that starts one there.
	StartLate func(t *testing.T) (addr string, start func())
	// SourceProps and SinkProps, if set, return the flat props of a source
	// or sink check against addr; a nil function means the type has no
	// check of that side.
	SourceProps, SinkProps func(addr string) map[string]any
	// Exchange proves that an attached client works against the real
	// peer. It readies what it needs (a subscription, a table) and returns
	// a function that sends a message or row through the client, or from
	// the peer to it, and fails the test unless it arrives. The suite calls
	// that function before the peer is dropped and again after it is back,
	// so a subscription must deliver again after a reconnect.
	Exchange func(t *testing.T, client any) func(t *testing.T)
	// Conns is the most connections one live connection keeps at its peer
	// (a pool may keep a few); 0 means 1.
	Conns int
	// SelfDials is set for a type whose client dials by itself, each time
	// just after a probe of the connector's own went through the policy to
	// the same address (mangos, go-mod-messaging): the suite then allows
	// one dial it did not see for each it saw.
	SelfDials bool
	// Use, for a type whose clients are views (connector.Viewer), makes
	// one operation with a client and returns its error: once the attach
	// is released it must match connector.ErrDetached.
	Use func(client any) error
	// Listens is set for a type that listens rather than dials (httppush):
	// it has no peer to lose or to count, so Drop is skipped, and Same
	// says whether two clients share one listener.
	Listens bool
	Same    func(a, b any) bool
}

// Invalid is a props map that must be refused.
type Invalid struct {
	Name   string
	Props  map[string]any
	Fields []string
}

// Run runs the conformance tests against h.
func Run(t *testing.T, h Harness) {
	t.Run("Connects", func(t *testing.T) { testConnects(t, h) })
	t.Run("Invalid", func(t *testing.T) { testInvalid(t, h) })
	t.Run("Unreachable", func(t *testing.T) { testUnreachable(t, h) })
	t.Run("StartsLate", func(t *testing.T) { testStartsLate(t, h) })
	t.Run("Exchange", func(t *testing.T) { testExchange(t, h) })
	t.Run("Shared", func(t *testing.T) { testShared(t, h) })
	t.Run("DropAndReturn", func(t *testing.T) { testDrop(t, h) })
	t.Run("DialPolicy", func(t *testing.T) { testDialPolicy(t, h) })
	t.Run("Released", func(t *testing.T) { testReleased(t, h) })
	t.Run("CloseLeavesNothing", func(t *testing.T) { testClose(t, h) })
	t.Run("Secrets", func(t *testing.T) { testSecrets(t, h) })
	t.Run("SecretStaysHome", func(t *testing.T) { testSecretStaysHome(t, h) })
	t.Run("Checks", func(t *testing.T) { testChecks(t, h) })
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type env struct {
	m    *connection.Manager
	reg  *registry.Registry
	logs *logBuffer
}

func newEnv(t *testing.T, h Harness) *env { t.Helper(); return newEnvWith(t, h, nil) }

// newEnvWith is newEnv with a Manager of policy p (nil: the default).
func newEnvWith(t *testing.T, h Harness, p *connector.Policy) *env {
	t.Helper()
	e := &env{reg: &registry.Registry{}, logs: &logBuffer{}}
	e.reg.Register(h.Name, h.Type)
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{
		Registry:       e.reg,
		Logger:         slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MinBackoff:     10 * time.Millisecond,
		MaxBackoff:     200 * time.Millisecond,
		DialTimeout:    2 * time.Second,
		HealthInterval: 200 * time.Millisecond,
		Policy:         p,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	t.Cleanup(func() { m.Close() })
	return e
}

func (e *env) create(t *testing.T, id string, props map[string]any) {
	t.Helper()
	if _, err := e.m.Create(context.Background(), connection.Spec{ID: id, Type: e.reg.Names()[0], Props: props}); err != nil {
		t.Fatalf("Create %s: %v", id, err)
	}
}

// Eventually polls cond until it holds, and fails the test if it does
// not within 5 s: a wait with a deadline, never a sleep that hopes.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// WaitActive polls until the LastActivityAt of the connection id is
// about now: the link carried a message.
func WaitActive(t *testing.T, m *connection.Manager, id string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		in, err := m.Get(id)
		if err == nil && !in.LastActivityAt.IsZero() && time.Since(in.LastActivityAt).Abs() < 2*time.Second {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: LastActivityAt %v, want about %v (%v)", id, in.LastActivityAt, time.Now().UTC(), err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitState polls until the connection id is in state want.
func WaitState(t testing.TB, m *connection.Manager, id string, want connection.State, within time.Duration) connection.Info {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		in, err := m.Get(id)
		if err == nil && in.State == want {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not %s within %v: %+v %v", id, want, within, in.Status, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ClosedAddr returns a loopback address where nothing listens.
func ClosedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// SilentAddr returns a loopback address that accepts TCP connections and
// never says a word, until the test ends.
func SilentAddr(t *testing.T) string { return NewCapture(t).Addr() }

// Capture is a loopback listener that accepts connections, records what
// they send and never answers, until the test ends: a place a secret must
// never reach.
type Capture struct {
	ln net.Listener

	mu      sync.Mutex
	accepts int
	data    bytes.Buffer
}

// NewCapture starts a Capture; it stops when the test ends.
func NewCapture(t *testing.T) *Capture {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &Capture{ln: ln}
	var wg sync.WaitGroup
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.accepts++
			conns = append(conns, nc)
			c.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				buf := make([]byte, 4096)
				for {
					n, err := nc.Read(buf)
					c.mu.Lock()
					c.data.Write(buf[:n])
					c.mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		c.mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		c.mu.Unlock()
		wg.Wait()
	})
	return c
}

// Addr is the listener's host:port.
func (c *Capture) Addr() string { return c.ln.Addr().String() }

// Accepts is how many connections it has accepted.
func (c *Capture) Accepts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accepts
}

// Received is every byte received so far.
func (c *Capture) Received() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.data.Bytes())
}

func testConnects(t *testing.T, h Harness) {
	e := newEnv(t, h)
	e.create(t, "live", h.Props(h.Addr))
	in := WaitState(t, e.m, "live", connection.StateConnected, 15*time.Second)
	if in.Err != "" {
		t.Errorf("connected with err %q", in.Err)
	}
}

func testInvalid(t *testing.T, h Harness) {
	e := newEnv(t, h)
	for _, inv := range h.Invalid {
		t.Run(inv.Name, func(t *testing.T) {
			_, err := e.m.Create(context.Background(), connection.Spec{ID: "bad", Type: h.Name, Props: inv.Props})
			var ce *connection.Error
			if !errors.As(err, &ce) || ce.Code != connection.CodeInvalidArgument {
				t.Fatalf("Create: %v, want invalid_argument", err)
			}
			var got []string
			for _, f := range ce.Fields {
				got = append(got, f.Field)
			}
			for _, f := range inv.Fields {
				if !slices.Contains(got, f) {
					t.Errorf("fields %v lack %q: %v", got, f, err)
				}
			}
		})
	}
	if l := e.m.List(); len(l) != 0 {
		t.Errorf("invalid props stored %d connections", len(l))
	}
}

// unreachable returns props that cannot connect, by name.
func (h Harness) unreachable(t *testing.T) map[string]map[string]any {
	if h.Unreachable != nil {
		return map[string]map[string]any{"unreachable": h.Unreachable(t)}
	}
	return map[string]map[string]any{"refused": h.Props(ClosedAddr(t)), "silent": h.Props(SilentAddr(t))}
}

func testUnreachable(t *testing.T, h Harness) {
	e := newEnv(t, h)
	for id, props := range h.unreachable(t) {
		start := time.Now()
		e.create(t, id, props)
		in := WaitState(t, e.m, id, connection.StateDisconnected, 10*time.Second)
		if in.Err == "" {
			t.Errorf("%s: disconnected with no error", id)
		}
		// Connect honours its context: the 2 s dial timeout, and a moment.
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: disconnected after %v; Connect must return when its context (2 s) ends", id, d.Round(time.Millisecond))
		}
	}
}

func testStartsLate(t *testing.T, h Harness) {
	if h.StartLate == nil {
		t.Skip("the harness cannot start a peer late")
	}
	addr, start := h.StartLate(t)
	e := newEnv(t, h)
	e.create(t, "late", h.Props(addr))
	WaitState(t, e.m, "late", connection.StateDisconnected, 10*time.Second)
	start()
	WaitState(t, e.m, "late", connection.StateConnected, 20*time.Second)
}

// peer returns the address props should dial: a Proxy in front of the
// real peer, or the peer itself for a type that listens.
func (h Harness) peer(t *testing.T) (string, *Proxy) {
	if h.Listens {
		return h.Addr, nil
	}
	p := NewProxy(t, h.Addr)
	return p.Addr(), p
}

func (h Harness) exchange(t *testing.T) func(*testing.T, any) func(*testing.T) {
	if h.Exchange == nil {
		t.Fatal("the harness has no Exchange: the suite cannot prove that a client works")
	}
	return h.Exchange
}

// testExchange: a message or row goes through an attached client and
// arrives.
func testExchange(t *testing.T, h Harness) {
	e := newEnv(t, h)
	e.create(t, "live", h.Props(h.Addr))
	WaitState(t, e.m, "live", connection.StateConnected, 15*time.Second)
	c, err := e.m.Attach(context.Background(), "live", "rule/source")
	if err != nil {
		t.Fatal(err)
	}
	h.exchange(t)(t, c)(t)
}

// testShared: 50 refs share one live connection, as the peer counts its
// connections; each client works.
func testShared(t *testing.T, h Harness) {
	addr, proxy := h.peer(t)
	e := newEnv(t, h)
	e.create(t, "shared", h.Props(addr))
	WaitState(t, e.m, "shared", connection.StateConnected, 15*time.Second)
	ctx := context.Background()
	const n = 50
	clients := make([]any, n)
	for i := range n {
		c, err := e.m.Attach(ctx, "shared", fmt.Sprintf("rule%d/source", i))
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	in, _ := e.m.Get("shared")
	if in.RefCount != n {
		t.Errorf("refCount %d, want %d", in.RefCount, n)
	}
	accepted := 0
	if proxy != nil {
		accepted = proxy.Accepted()
	}
	const rounds = 10
	for _, c := range []any{clients[0], clients[n/2], clients[n-1]} {
		send := h.exchange(t)(t, c)
		for range rounds {
			send(t)
		}
	}
	if proxy != nil {
		// 30 exchanges need no new connection at the peer: a few at most
		// (a health ping, a pool that grows by one), never one each.
		if grew := proxy.Accepted() - accepted; grew > max(h.Conns, 1)+5 {
			t.Fatalf("the peer accepted %d connections for %d exchanges through one shared connection", grew, 3*rounds)
		}
		max := max(h.Conns, 1)
		// Short-lived connections (a health ping) may come and go: poll
		// until the long-lived ones are all that is left.
		deadline := time.Now().Add(5 * time.Second)
		for open := proxy.Open(); open < 1 || open > max; open = proxy.Open() {
			if time.Now().After(deadline) {
				t.Fatalf("the peer has %d connections for %d refs of one connection, want 1 to %d", open, n, max)
			}
			time.Sleep(5 * time.Millisecond)
		}
	} else if h.Same != nil {
		for i, c := range clients {
			if !h.Same(clients[0], c) {
				t.Fatalf("client %d does not share the live connection", i)
			}
		}
	}
	for _, r := range in.Refs {
		e.m.Detach("shared", r)
	}
	if in, _ := e.m.Get("shared"); in.RefCount != 0 {
		t.Errorf("refCount after detaching all: %d", in.RefCount)
	}
}

// testDialPolicy: the Manager's dial policy holds for connections, not
// only checks: denied, the connection never reaches its peer (the proxy
// accepts nothing) and says why; allowed exactly, it connects.
func testDialPolicy(t *testing.T, h Harness) {
	if h.Listens {
		t.Skip("the type listens: it dials nothing")
	}
	proxy := NewProxy(t, h.Addr)
	denied := newEnvWith(t, h, &connector.Policy{Dial: &connector.DialPolicy{DenyLoopback: true}})
	denied.create(t, "denied", h.Props(proxy.Addr()))
	in := WaitState(t, denied.m, "denied", connection.StateDisconnected, 10*time.Second)
	if !strings.Contains(in.Err, "denied") {
		t.Errorf("a connection the policy denies: %+v, want an error saying denied", in.Status)
	}
	denied.m.Close()
	if n := proxy.Accepted(); n != 0 {
		t.Fatalf("a denied connection reached its peer %d times", n)
	}
	// Allowed exactly: every connection the peer accepts, on Connect, for
	// the client's work and for health pings, was one the policy saw.
	host, port := splitAddr(t, proxy.Addr())
	var seen atomic.Int64
	exact := &connector.DialPolicy{Allow: []netip.Prefix{netip.PrefixFrom(host, host.BitLen())}, Ports: []uint16{port},
		Observe: func(netip.AddrPort) { seen.Add(1) }}
	allowed := newEnvWith(t, h, &connector.Policy{Dial: exact})
	allowed.create(t, "allowed", h.Props(proxy.Addr()))
	WaitState(t, allowed.m, "allowed", connection.StateConnected, 15*time.Second)
	c, err := allowed.m.Attach(context.Background(), "allowed", "rule/source")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("traffic", func(t *testing.T) {
		send := h.exchange(t)(t, c)
		for range 3 {
			send(t)
		}
	})
	per := int64(1)
	if h.SelfDials {
		per = 2
	}
	// Watch a few health intervals (200 ms) for a ping that dials around
	// the policy.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if a := int64(proxy.Accepted()); a > per*seen.Load() {
			t.Fatalf("the peer accepted %d connections, the policy saw %d dials: a socket went around Events.Dialer or connector.Dialer", a, seen.Load())
		}
	}
}

// testReleased: a client that is a view of the link (connector.Viewer)
// fails at once with ErrDetached once its attach is released.
func testReleased(t *testing.T, h Harness) {
	conn, err := h.Type.Open(mustDecode(t, h), stubEvents{})
	if err != nil {
		t.Fatal(err)
	}
	_, views := conn.(connector.Viewer)
	conn.Close()
	if !views {
		t.Skip("the type hands out no views: its clients are the shared link itself")
	}
	if h.Use == nil {
		t.Fatal("the type hands out views: give the harness a Use, so that the suite can prove a released view fails")
	}
	e := newEnv(t, h)
	e.create(t, "live", h.Props(h.Addr))
	WaitState(t, e.m, "live", connection.StateConnected, 15*time.Second)
	c, err := e.m.Attach(context.Background(), "live", "rule/source")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Use(c); err != nil {
		t.Fatalf("a held view: %v", err)
	}
	e.m.Detach("live", "rule/source")
	if err := h.Use(c); !errors.Is(err, connector.ErrDetached) {
		t.Errorf("a released view: %v, want an error matching connector.ErrDetached", err)
	}
}

func mustDecode(t *testing.T, h Harness) connector.Props {
	p, err := h.Type.Schema().Decode(h.Props(h.Addr))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// stubEvents is the Events of a conn that is opened and closed, never
// connected.
type stubEvents struct{}

func (stubEvents) Lost(error)                {}
func (stubEvents) Policy() *connector.Policy { return nil }
func (stubEvents) Logger() *slog.Logger      { return slog.New(slog.DiscardHandler) }
func (stubEvents) Dialer() *net.Dialer       { return &net.Dialer{} }

// testDrop: the peer is dropped and brought back. The connection turns
// disconnected, then connected again, and the client works again; a
// connector that never notices a lost link fails here.
func testDrop(t *testing.T, h Harness) {
	if h.Listens {
		t.Skip("the type listens: it has no peer to lose")
	}
	// Everything of the case runs in a subtest, so that it is all closed
	// when its goroutines are counted: a lost link must leave none.
	before := goleak.IgnoreCurrent()
	t.Run("drop", func(t *testing.T) { dropAndReturn(t, h) })
	goleak.VerifyNone(t, before)
}

func dropAndReturn(t *testing.T, h Harness) {
	addr, proxy := h.peer(t)
	e := newEnv(t, h)
	e.create(t, "drop", h.Props(addr))
	WaitState(t, e.m, "drop", connection.StateConnected, 15*time.Second)
	c, err := e.m.Attach(context.Background(), "drop", "rule/source")
	if err != nil {
		t.Fatal(err)
	}
	send := h.exchange(t)(t, c)
	send(t)
	proxy.Cut()
	down := WaitState(t, e.m, "drop", connection.StateDisconnected, 10*time.Second)
	if down.Err == "" {
		t.Error("disconnected without a reason")
	}
	proxy.Restore()
	deadline := time.Now().Add(15 * time.Second)
	for in, _ := e.m.Get("drop"); in.State != connection.StateConnected || !in.Since.After(down.Since); in, _ = e.m.Get("drop") {
		if time.Now().After(deadline) {
			t.Fatalf("not connected again after the peer came back: %+v", in.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
	send(t)
}

// testClose: after Close of the Manager, with a live connection in use and
// unreachable ones redialing, no goroutine is left and the process has no
// more open files than before.
func testClose(t *testing.T, h Harness) {
	// The silent peer's accept loop is the suite's own; it ends at cleanup.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/connkit/connkit/connector/connectortest.NewCapture.func1"),
		goleak.IgnoreAnyFunction("github.com/connkit/connkit/connector/connectortest.NewCapture.func1.1"))
	unreachable := h.unreachable(t)
	fdsBefore := OpenFiles(t)
	e := newEnv(t, h)
	e.create(t, "live", h.Props(h.Addr))
	for id, props := range unreachable {
		e.create(t, id, props)
		WaitState(t, e.m, id, connection.StateDisconnected, 10*time.Second)
	}
	WaitState(t, e.m, "live", connection.StateConnected, 15*time.Second)
	c, err := e.m.Attach(context.Background(), "live", "r")
	if err != nil {
		t.Fatal(err)
	}
	if h.Exchange != nil {
		// In a subtest, so that what the harness opens for it is closed
		// before the count.
		t.Run("exchange", func(t *testing.T) { h.Exchange(t, c)(t) })
	}
	start := time.Now()
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	if fdsBefore < 0 {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for n := OpenFiles(t); n > fdsBefore; n = OpenFiles(t) {
		if time.Now().After(deadline) {
			t.Fatalf("%d files open after Close, %d before:\n%s", n, fdsBefore, strings.Join(openFileNames(), "\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// OpenFiles is how many files this process has open (/proc/self/fd), or
// -1 where that cannot be read.
func OpenFiles(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents) - 1 // the directory read itself
}

func openFileNames() []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			out = append(out, e.Name()+" -> "+l)
		}
	}
	return out
}

// secrets are the harness's Secrets and every secret that its props hold
// by the schema: a harness cannot skip the case by naming none.
func (h Harness) secrets() []string {
	out := slices.Clone(h.Secrets)
	schema := h.Type.Schema()
	out = append(out, secret.Values(schema, h.Props(h.Addr))...)
	if h.BadAuth != nil {
		out = append(out, secret.Values(schema, h.BadAuth())...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// captureLogs sends the standard library's loggers (log and slog's
// default) to a buffer until the test ends: a connector that logs a
// secret there is caught too.
func captureLogs(t *testing.T) *logBuffer {
	buf := &logBuffer{}
	oldSlog, oldOut, oldFlags := slog.Default(), log.Writer(), log.Flags()
	slog.SetDefault(slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	log.SetOutput(buf)
	t.Cleanup(func() {
		slog.SetDefault(oldSlog)
		log.SetOutput(oldOut)
		log.SetFlags(oldFlags)
	})
	return buf
}

func testSecrets(t *testing.T, h Harness) {
	secrets := h.secrets()
	if len(secrets) == 0 {
		t.Skip("the props hold no secret")
	}
	std := captureLogs(t)
	e := newEnv(t, h)
	e.create(t, "good", h.Props(h.Addr))
	for id, props := range h.unreachable(t) {
		e.create(t, id, props)
		WaitState(t, e.m, id, connection.StateDisconnected, 10*time.Second)
	}
	WaitState(t, e.m, "good", connection.StateConnected, 15*time.Second)
	var seen []string
	if h.BadAuth != nil {
		e.create(t, "badauth", h.BadAuth())
		in := WaitState(t, e.m, "badauth", connection.StateDisconnected, 10*time.Second)
		if !in.Permanent {
			t.Errorf("refused credentials are not reported as permanent: %+v", in.Status)
		}
		seen = append(seen, in.Err)
	}
	// An update that changes nothing but sends the masks back.
	in, _ := e.m.Get("good")
	up, err := e.m.Update(context.Background(), connection.Spec{ID: "good", Type: h.Name, Props: in.Props}, connection.Tag{})
	if err != nil {
		t.Fatalf("update with masked props: %v", err)
	}
	WaitState(t, e.m, "good", connection.StateConnected, 15*time.Second)
	out, _ := json.Marshal(append(e.m.List(), up))
	seen = append(seen, string(out), e.logs.String(), std.String())
	for _, s := range secrets {
		for _, text := range seen {
			if strings.Contains(text, s) {
				t.Errorf("secret %q appears in:\n%s", s, text)
			}
		}
	}
}

// testSecretStaysHome: an update that moves the connection to another
// endpoint while sending the masks back, and a check that names the
// stored connection with another endpoint, are refused; nothing reaches
// the other endpoint. With the secrets given again, the update goes there.
func testSecretStaysHome(t *testing.T, h Harness) {
	schema := h.Type.Schema()
	if len(h.secrets()) == 0 || !slices.ContainsFunc(schema.Fields, func(f connector.Field) bool { return f.Secret || len(f.SecretKeys) > 0 }) {
		t.Skip("the type has no secret")
	}
	e := newEnv(t, h)
	e.create(t, "home", h.Props(h.Addr))
	WaitState(t, e.m, "home", connection.StateConnected, 15*time.Second)
	away := NewCapture(t)
	isSecret := func(field string) bool {
		f, _ := schema.Field(field)
		return f.Secret || len(f.SecretKeys) > 0
	}
	_, err := e.m.Update(context.Background(), connection.Spec{ID: "home", Type: h.Name, Props: secret.MaskProps(schema, h.Props(away.Addr()))}, connection.Tag{})
	var ce *connection.Error
	if !errors.As(err, &ce) || ce.Code != connection.CodeInvalidArgument || len(ce.Fields) == 0 || !isSecret(ce.Fields[0].Field) {
		t.Errorf("update to another endpoint with the masks: %v, want invalid_argument naming the secret", err)
	}
	if in, _ := e.m.Get("home"); in.Version != 1 {
		t.Errorf("the refused update was stored: version %d", in.Version)
	}
	base, err := e.m.Resolve("home")
	if err != nil {
		t.Fatal(err)
	}
	reg := &registry.Registry{}
	reg.Register(h.Name, h.Type)
	c := check.New(&check.Options{Registry: reg, Timeout: 2 * time.Second})
	for _, side := range []struct {
		props func(string) map[string]any
		run   func(context.Context, check.Request) (check.Result, error)
	}{{h.SourceProps, c.Source}, {h.SinkProps, c.Sink}} {
		if side.props == nil {
			continue
		}
		masked := secret.MaskProps(schema, side.props(away.Addr()))
		left := withoutSecrets(schema, side.props(away.Addr()))
		for _, body := range []map[string]any{masked, left} {
			_, err := side.run(context.Background(), check.Request{Type: h.Name, Base: base.Props, Props: body})
			var ce *check.Error
			if !errors.As(err, &ce) || !errors.Is(err, check.ErrInvalid) || len(ce.Fields) == 0 || !isSecret(ce.Fields[0].Field) {
				t.Errorf("a check naming the stored connection with another endpoint %v: %v, want ErrInvalid naming the secret", body, err)
			}
		}
	}
	if n := away.Accepts(); n != 0 {
		t.Fatalf("the other endpoint was dialed %d times; it received %q", n, away.Received())
	}
	// The control: with the secrets given, the connection goes there.
	if _, err := e.m.Update(context.Background(), connection.Spec{ID: "home", Type: h.Name, Props: h.Props(away.Addr())}, connection.Tag{}); err != nil {
		t.Fatalf("update to another endpoint with the secrets: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for away.Accepts() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the props of another endpoint never dial it: the test proves nothing")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// withoutSecrets drops every secret of p (a URL keeps its user but not
// its password), as a check body that leaves them to the stored
// connection.
func withoutSecrets(schema *connector.Schema, p map[string]any) map[string]any {
	out := connector.Props(p).Clone()
	for _, f := range schema.Fields {
		switch {
		case f.Secret && f.Kind == connector.URL:
			if u, err := url.Parse(out.String(f.Name)); err == nil && u.User != nil {
				u.User = url.User(u.User.Username())
				out[f.Name] = u.String()
			}
		case f.Secret:
			delete(out, f.Name)
		case len(f.SecretKeys) > 0:
			if m, ok := out[f.Name].(map[string]any); ok {
				for k := range m {
					if f.SecretKey(k) {
						delete(m, k)
					}
				}
			}
		}
	}
	return out
}

func testChecks(t *testing.T, h Harness) {
	if h.SourceProps == nil && h.SinkProps == nil {
		t.Skip("the type has no checks")
	}
	// A check leaves nothing open: no socket, no goroutine.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/connkit/connkit/connector/connectortest.NewCapture.func1"),
		goleak.IgnoreAnyFunction("github.com/connkit/connkit/connector/connectortest.NewCapture.func1.1"))
	reg := &registry.Registry{}
	reg.Register(h.Name, h.Type)
	const timeout = 2 * time.Second
	c := check.New(&check.Options{Registry: reg, Timeout: timeout})
	if h.Listens {
		testListenerChecks(t, h, c)
		return
	}
	sides := []struct {
		name  string
		props func(string) map[string]any
		run   func(context.Context, check.Request) (check.Result, error)
	}{{"source", h.SourceProps, c.Source}, {"sink", h.SinkProps, c.Sink}}
	for _, side := range sides {
		if side.props == nil {
			continue
		}
		t.Run(side.name, func(t *testing.T) {
			ctx := context.Background()
			if _, err := side.run(ctx, check.Request{Type: h.Name, Props: side.props(h.Addr)}); err != nil {
				t.Fatalf("check against the live peer: %v", err)
			}
			start := time.Now()
			_, err := side.run(ctx, check.Request{Type: h.Name, Props: side.props(ClosedAddr(t))})
			wantReason(t, err, check.ErrFailed, connector.ReasonRefused)
			if d := time.Since(start); d > timeout/2 {
				t.Errorf("a closed port took %v to fail; it should fail at once", d)
			}
			start = time.Now()
			_, err = side.run(ctx, check.Request{Type: h.Name, Props: side.props(SilentAddr(t))})
			wantReason(t, err, check.ErrTimeout, connector.ReasonTimeout)
			if d := time.Since(start); d > timeout+time.Second {
				t.Errorf("a silent peer took %v with a timeout of %v", d, timeout)
			}
			// The connector itself returns within about 100 ms of its
			// context's end: a checker of one slot gets its slot back.
			one := check.New(&check.Options{Registry: reg, Timeout: timeout, MaxInFlight: 1})
			runOne := one.Sink
			if side.name == "source" {
				runOne = one.Source
			}
			runOne(ctx, check.Request{Type: h.Name, Props: side.props(SilentAddr(t))})
			deadline := time.Now().Add(300 * time.Millisecond)
			for {
				_, err := runOne(ctx, check.Request{Type: h.Name, Props: side.props(h.Addr)})
				if !errors.Is(err, check.ErrBusy) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("a check still runs 300 ms after its context ended: the connector ignores its context")
				}
				time.Sleep(10 * time.Millisecond)
			}
			// A dial policy holds on every connection the check opens.
			host, port := splitAddr(t, h.Addr)
			runWith := func(pol *connector.DialPolicy) error {
				pc := check.New(&check.Options{Registry: reg, Timeout: timeout, DialPolicy: pol})
				req := check.Request{Type: h.Name, Props: side.props(h.Addr)}
				var err error
				if side.name == "source" {
					_, err = pc.Source(ctx, req)
				} else {
					_, err = pc.Sink(ctx, req)
				}
				return err
			}
			for name, pol := range map[string]*connector.DialPolicy{
				"deny loopback": {DenyLoopback: true},
				"other port":    {Ports: []uint16{port + 1}},
				"other network": {Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
			} {
				if err := runWith(pol); !errors.Is(err, check.ErrDenied) {
					t.Errorf("policy %s: %v, want the dial denied", name, err)
				}
			}
			exact := &connector.DialPolicy{Allow: []netip.Prefix{netip.PrefixFrom(host, host.BitLen())}, Ports: []uint16{port}, DenyLinkLocal: true}
			if err := runWith(exact); err != nil {
				t.Errorf("a policy that allows exactly the peer: %v", err)
			}
			if h.BadAuth != nil {
				props := side.props(h.Addr)
				for k, v := range h.BadAuth() {
					props[k] = v
				}
				_, err = side.run(ctx, check.Request{Type: h.Name, Props: props})
				ce := wantReason(t, err, check.ErrFailed, connector.ReasonUnauthorized)
				for _, s := range h.Secrets {
					if strings.Contains(ce.Message, s) {
						t.Errorf("secret in the check error: %s", ce.Message)
					}
				}
			}
		})
	}
}

// testListenerChecks: for a type that listens, a check passes on an
// address it can bind and fails on one another program holds; a side it
// does not have is refused as unsupported.
func testListenerChecks(t *testing.T, h Harness, c *check.Checker) {
	ctx := context.Background()
	for _, side := range []struct {
		name  string
		props func(string) map[string]any
		run   func(context.Context, check.Request) (check.Result, error)
	}{{"source", h.SourceProps, c.Source}, {"sink", h.SinkProps, c.Sink}} {
		t.Run(side.name, func(t *testing.T) {
			if side.props == nil {
				if _, err := side.run(ctx, check.Request{Type: h.Name, Props: h.Props(h.Addr)}); !errors.Is(err, check.ErrUnsupported) {
					t.Errorf("a check of a side the type does not have: %v, want ErrUnsupported", err)
				}
				return
			}
			if _, err := side.run(ctx, check.Request{Type: h.Name, Props: side.props(h.Addr)}); err != nil {
				t.Errorf("a check of a free address: %v", err)
			}
			if h.Unreachable == nil {
				return
			}
			taken := h.Unreachable(t)
			for k, v := range side.props(h.Addr) {
				if _, ok := taken[k]; !ok {
					taken[k] = v
				}
			}
			if _, err := side.run(ctx, check.Request{Type: h.Name, Props: taken}); !errors.Is(err, check.ErrFailed) {
				t.Errorf("a check of an address another program holds: %v, want ErrFailed", err)
			}
		})
	}
}

func splitAddr(t *testing.T, addr string) (netip.Addr, uint16) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatalf("harness Addr %q: %v", addr, err)
	}
	return ap.Addr(), ap.Port()
}

func wantReason(t *testing.T, err error, kind error, reason string) *check.Error {
	t.Helper()
	var ce *check.Error
	if !errors.As(err, &ce) || !errors.Is(err, kind) || ce.Reason != reason {
		t.Fatalf("check error %v (%+v), want %v with reason %q", err, ce, kind, reason)
	}
	return ce
}

// Env returns the environment variable name, which names a real peer that
// the test command starts (connkit's own use CONNKIT_MQTT_ADDR,
// CONNKIT_MYSQL_URL, ...). Unset, the test is skipped; once set, a test
// that cannot reach the peer fails.
func Env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Skipf("%s is not set: set it to the address of a running peer to run this test", name)
	}
	return v
}

// Binary returns the path of the server program name (mosquitto,
// mariadbd, ...), looking in PATH and in Debian's sbin. Missing, the test
// is skipped, or fails if env (the variable that says the test command
// runs that server) is set.
func Binary(t testing.TB, name, env string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name, "/usr/bin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv(env) != "" {
		t.Fatalf("%s is not installed, though %s is set", name, env)
	}
	t.Skipf("%s is not installed: install it (Debian: apt-get install) to run this test", name)
	return ""
}
