package connectortest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/connkit/connkit/connector"
)

// Fake is a connector.Type for unit tests of code that uses a Manager: its
// connections dial simulated peers that a test brings up, takes down,
// makes hang or refuse credentials. Register it in a private registry:
//
//	fake := connectortest.NewFake()
//	reg := &registry.Registry{}
//	reg.Register("fake", fake)
//
// Props: addr (required), password (secret), url (a URL whose password is
// secret), header (a map whose Authorization value is secret), mode
// (one of a, b).
type Fake struct {
	mu    sync.Mutex
	peers map[string]*peer
	conns map[*FakeConn]struct{}
}

type peer struct {
	up       bool
	authFail bool
	hang     bool
	stall    time.Duration
	block    chan struct{}
	dials    int
	checks   int
}

// NewFake returns a Fake whose peers are all up.
func NewFake() *Fake {
	return &Fake{peers: map[string]*peer{}, conns: map[*FakeConn]struct{}{}}
}

var fakeSchema = &connector.Schema{Fields: []connector.Field{
	{Name: "addr", Kind: connector.String, Required: true, Endpoint: true, Doc: "the simulated peer"},
	{Name: "password", Kind: connector.String, Secret: true, Doc: "a secret"},
	{Name: "url", Kind: connector.URL, Secret: true, Doc: "a URL whose password is secret"},
	{Name: "header", Kind: connector.Map, SecretKeys: []string{"Authorization"}, Doc: "headers; Authorization is secret"},
	{Name: "mode", Kind: connector.String, Default: "a", Allowed: []any{"a", "b"}, Doc: "a mode"},
	{Name: "retries", Kind: connector.Int, Default: 3, Doc: "a number"},
}}

// Schema implements connector.Type.
func (f *Fake) Schema() *connector.Schema { return fakeSchema }

// Open implements connector.Type. An addr of "invalid" is refused, to test
// validation beyond the schema.
func (f *Fake) Open(p connector.Props, ev connector.Events) (connector.Conn, error) {
	if p.String("addr") == "invalid" {
		return nil, connector.FieldErrors{{Field: "addr", Message: "invalid is not a peer"}}
	}
	c := &FakeConn{f: f, addr: p.String("addr"), password: p.String("password"), ev: ev, props: p}
	f.mu.Lock()
	f.conns[c] = struct{}{}
	f.mu.Unlock()
	return c, nil
}

func (f *Fake) peer(addr string) *peer {
	p := f.peers[addr]
	if p == nil {
		p = &peer{up: true}
		f.peers[addr] = p
	}
	return p
}

// SetUp brings the peer addr up or takes it down. Taking it down makes
// every connected conn to it report Lost.
func (f *Fake) SetUp(addr string, up bool) {
	f.mu.Lock()
	f.peer(addr).up = up
	var lost []*FakeConn
	if !up {
		for c := range f.conns {
			if c.addr == addr && c.connected {
				c.connected = false
				lost = append(lost, c)
			}
		}
	}
	f.mu.Unlock()
	for _, c := range lost {
		c.ev.Lost(fmt.Errorf("peer %s went away", addr))
	}
}

// SetAuthFail makes the peer addr refuse credentials, permanently.
func (f *Fake) SetAuthFail(addr string, fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peer(addr).authFail = fail
}

// SetHang makes dials to addr block until their context ends.
func (f *Fake) SetHang(addr string, hang bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peer(addr).hang = hang
}

// Dials returns how many dials addr has seen.
func (f *Fake) Dials(addr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.peer(addr).dials
}

// Open returns how many conns to addr are open (opened and not closed).
func (f *Fake) OpenConns(addr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for c := range f.conns {
		if c.addr == addr {
			n++
		}
	}
	return n
}

// FakeConn is a connection of a Fake.
type FakeConn struct {
	f        *Fake
	addr     string
	password string
	props    connector.Props
	ev       connector.Events

	// guarded by f.mu
	connected bool
	closed    bool
	released  []string
}

// Connect implements connector.Conn.
func (c *FakeConn) Connect(ctx context.Context) error {
	c.f.mu.Lock()
	if c.closed {
		c.f.mu.Unlock()
		return errors.New("fake: connect after close")
	}
	p := c.f.peer(c.addr)
	p.dials++
	hang, up, authFail := p.hang, p.up, p.authFail
	c.f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	switch {
	case !up:
		return fmt.Errorf("fake: dial %s: connection refused", c.addr)
	case authFail:
		// The message carries the password, as careless drivers' do: the
		// Manager must scrub it.
		return connector.Permanent(fmt.Errorf("fake: %s refused password %q", c.addr, c.password))
	}
	c.f.mu.Lock()
	c.connected = true
	c.f.mu.Unlock()
	return nil
}

// Client implements connector.Conn; the Manager calls View instead.
func (c *FakeConn) Client(ref string) any { return &FakeClient{c: c, ref: ref} }

// View implements connector.Viewer: every attach gets a FakeClient of its
// own, detached when that attach is released.
func (c *FakeConn) View(ref string) (any, func()) {
	cl := &FakeClient{c: c, ref: ref}
	return cl, func() {
		if cl.detached.Swap(true) {
			panic("connectortest: a FakeClient was ended twice")
		}
	}
}

// FakeClient is what one attach of a Fake connection gets.
type FakeClient struct {
	c        *FakeConn
	ref      string
	detached atomic.Bool
}

// Conn returns the shared conn behind the client.
func (cl *FakeClient) Conn() *FakeConn { return cl.c }

// Ref returns the ref the client was attached as.
func (cl *FakeClient) Ref() string { return cl.ref }

// Use is an operation on the shared conn, as a rule would make: it fails
// with connector.ErrDetached once the attach was released, and when the
// conn is closed or not connected.
func (cl *FakeClient) Use() error {
	if cl.detached.Load() {
		return fmt.Errorf("fake: %w", connector.ErrDetached)
	}
	cl.c.f.mu.Lock()
	defer cl.c.f.mu.Unlock()
	switch {
	case cl.c.closed:
		return errors.New("fake: the connection is closed")
	case !cl.c.connected:
		return errors.New("fake: not connected")
	}
	return nil
}

// Lose reports a lost link to the Manager through the conn's Events,
// whatever the conn's state: as a connector may, at any time.
func (c *FakeConn) Lose(err error) { c.ev.Lost(err) }

// Log logs msg through the conn's Events logger, as a driver handed it
// would.
func (c *FakeConn) Log(msg string, args ...any) { c.ev.Logger().Info(msg, args...) }

// Props returns the decoded props the conn was opened with.
func (c *FakeConn) Props() connector.Props { return c.props }

// Release implements connector.Releaser.
func (c *FakeConn) Release(ref string) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.released = append(c.released, ref)
}

// Released lists the refs released so far.
func (c *FakeConn) Released() []string {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	return append([]string(nil), c.released...)
}

// Closed reports whether Close was called.
func (c *FakeConn) Closed() bool {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	return c.closed
}

// Close implements connector.Conn.
func (c *FakeConn) Close() error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.closed {
		return errors.New("fake: closed twice")
	}
	c.closed = true
	c.connected = false
	delete(c.f.conns, c)
	return nil
}

// SetStall makes checks of addr sleep d, ignoring their context: a badly
// behaved connector.
func (f *Fake) SetStall(addr string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peer(addr).stall = d
}

// Block makes checks of addr wait, ignoring their context, until release
// is called: a badly behaved connector whose stall the test ends itself.
func (f *Fake) Block(addr string) (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.peer(addr).block = ch
	f.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// Checks returns how many checks addr has seen.
func (f *Fake) Checks(addr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.peer(addr).checks
}

// CheckSource implements connector.SourceChecker.
func (f *Fake) CheckSource(ctx context.Context, raw map[string]any) error { return f.check(ctx, raw) }

// CheckSink implements connector.SinkChecker. A "table" of "missing" fails
// with connector.ReasonMissing once the peer has answered, as a real
// connector learns it: props are checked and the peer reached first.
func (f *Fake) CheckSink(ctx context.Context, raw map[string]any) error {
	if err := f.check(ctx, raw); err != nil {
		return err
	}
	if raw["table"] == "missing" {
		return connector.CheckFailed(connector.ReasonMissing, errors.New(`table "missing" does not exist`))
	}
	return nil
}

func (f *Fake) check(ctx context.Context, raw map[string]any) error {
	p, _, err := fakeSchema.DecodeCheck(raw, nil)
	if err != nil {
		return err
	}
	addr := p.String("addr")
	f.mu.Lock()
	pe := f.peer(addr)
	pe.checks++
	hang, up, authFail, stall, block := pe.hang, pe.up, pe.authFail, pe.stall, pe.block
	f.mu.Unlock()
	switch {
	case block != nil:
		<-block
		return errors.New("fake: blocked")
	case stall > 0:
		time.Sleep(stall)
		return errors.New("fake: stalled")
	case hang:
		<-ctx.Done()
		return ctx.Err()
	case !up:
		return connector.CheckFailed(connector.ReasonRefused, fmt.Errorf("fake: dial %s: connection refused", addr))
	case authFail:
		return connector.CheckFailed(connector.ReasonUnauthorized, fmt.Errorf("fake: %s refused password %q", addr, p.String("password")))
	}
	return nil
}
