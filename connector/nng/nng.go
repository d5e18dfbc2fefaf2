// Package nng is the connection type "nng": a mangos (nanomsg) socket that
// dials a peer, shared by every rule attached to it.
//
// Props:
//
//	url              tcp://host:port or ipc:///path (required)
//	protocol         pair (default), push, pull, pub, sub, req or rep
//	maxMessageBytes  the largest message the peer may send; default 1 MiB
//
// An engine gets the socket with Attach:
//
//	s, err := nng.Attach(ctx, m, "bus", "rule1/sink")
//	err = s.Send(msg)
//
// Status follows the socket's pipes: when the peer goes away the connection
// is disconnected, and connected again when mangos has redialed it.
//
// Each attach gets a view of the one shared socket. The socket belongs to
// the Manager: the view's Close, Dial and Listen are refused and
// SetPipeEventHook does nothing. Once the attach is released, every
// operation fails with an error that matches connector.ErrDetached; a Recv
// blocked at that moment drops what it receives and fails the same way.
//
// mangos waits forever for the handshake of a peer that accepts a
// connection and never answers, and closing the socket does not free it.
// So before mangos dials, Connect exchanges the SP header with the peer
// itself, under the dial's deadline; a silent peer fails that probe and
// mangos never meets it. The check is the same probe.
//
// mangos dials and redials by itself; every socket it opens comes from the
// Manager's policy dialer (a transport of connkit's own), and is guarded:
// a message over maxMessageBytes closes the pipe before mangos allocates
// it, and the status says why. mangos' own OptionMaxRecvSize is set to it
// as well.
package nng

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"sync"
	"time"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/pair"
	"go.nanomsg.org/mangos/v3/protocol/pub"
	"go.nanomsg.org/mangos/v3/protocol/pull"
	"go.nanomsg.org/mangos/v3/protocol/push"
	"go.nanomsg.org/mangos/v3/protocol/rep"
	"go.nanomsg.org/mangos/v3/protocol/req"
	"go.nanomsg.org/mangos/v3/protocol/sub"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/scope"
	"github.com/connkit/connkit/registry"
)

// Type is the name this connection type registers under.
const Type = "nng"

func init() { registry.Register(Type, Connector{}) }

// Connector is the nng connector.Type.
type Connector struct{}

type protocol struct {
	open       func() (mangos.Socket, error)
	self, peer uint16
}

var protocols = map[string]protocol{
	"pair": {pair.NewSocket, pair.Self, pair.Peer},
	"push": {push.NewSocket, push.Self, push.Peer},
	"pull": {pull.NewSocket, pull.Self, pull.Peer},
	"pub":  {pub.NewSocket, pub.Self, pub.Peer},
	"sub":  {sub.NewSocket, sub.Self, sub.Peer},
	"req":  {req.NewSocket, req.Self, req.Peer},
	"rep":  {rep.NewSocket, rep.Self, rep.Peer},
}

var schema = &connector.Schema{Fields: []connector.Field{
	{Name: "url", Kind: connector.URL, Required: true, Secret: true, Endpoint: true, Doc: "tcp://host:port or ipc:///path of the peer; user info in it is masked"},
	{Name: "protocol", Kind: connector.String, Default: "pair",
		Allowed: []any{"pair", "push", "pull", "pub", "sub", "req", "rep"}, Doc: "the socket's protocol"},
	connector.MaxMessageField(connector.DefaultMaxMessageBytes, "the largest message the peer may send, with its protocol header; a larger one closes the pipe, which mangos redials"),
}}

// Schema implements connector.Type.
func (Connector) Schema() *connector.Schema { return schema }

// target is where to dial: the network and address for net.Dial.
type target struct {
	url      string
	network  string
	addr     string
	protocol protocol
	max      int64 // maxMessageBytes
}

func parse(p connector.Props) (*target, error) {
	u, err := url.Parse(p.String("url"))
	if err != nil {
		return nil, connector.FieldErrors{{Field: "url", Message: "not a URL; use tcp://host:port or ipc:///path"}}
	}
	max, fe := connector.MaxMessage(p)
	if fe != nil {
		return nil, fe
	}
	t := &target{url: u.String(), protocol: protocols[p.String("protocol")], max: max}
	switch u.Scheme {
	case "tcp":
		if u.Host == "" || u.Port() == "" {
			return nil, connector.FieldErrors{{Field: "url", Message: "give host and port, as in tcp://127.0.0.1:40899"}}
		}
		if msg := connector.BadPort(u.Port()); msg != "" {
			return nil, connector.FieldErrors{{Field: "url", Message: msg + ", as in tcp://127.0.0.1:40899"}}
		}
		t.network, t.addr = "tcp", u.Host
	case "ipc":
		path := u.Host + u.Path
		if path == "" {
			return nil, connector.FieldErrors{{Field: "url", Message: "no path; use ipc:///tmp/name.ipc"}}
		}
		if len(path) >= 108 {
			return nil, connector.FieldErrors{{Field: "url", Message: fmt.Sprintf("ipc path is %d bytes; the system allows at most 107", len(path))}}
		}
		t.network, t.addr = "unix", path
	default:
		return nil, connector.FieldErrors{{Field: "url", Message: fmt.Sprintf("scheme %q is not supported; use tcp:// or ipc://", u.Scheme)}}
	}
	return t, nil
}

// Open implements connector.Type. It makes the socket; nothing is dialed.
func (Connector) Open(p connector.Props, ev connector.Events) (connector.Conn, error) {
	t, err := parse(p)
	if err != nil {
		return nil, err
	}
	s, err := t.protocol.open()
	if err != nil {
		return nil, err
	}
	// mangos refuses a larger message itself too (before it allocates
	// it); its dialer takes the socket's value when it is made.
	if err := s.SetOption(mangos.OptionMaxRecvSize, int(min(t.max, math.MaxInt32))); err != nil {
		s.Close()
		return nil, err
	}
	c := &conn{t: t, sock: s, ev: ev, dialer: ev.Dialer(), active: connector.ActiveFunc(ev), attached: make(chan struct{})}
	s.SetPipeEventHook(c.pipeEvent)
	return c, nil
}

type conn struct {
	t      *target
	sock   mangos.Socket
	ev     connector.Events
	dialer *net.Dialer // the policy's, for the sockets mangos asks for
	active func()      // connector.Activity of ev: a message was sent or received

	mu       sync.Mutex
	md       mangos.Dialer
	addr     string // where mangos dials: the address the last probe reached
	pipes    int
	attached chan struct{} // closed while a pipe is attached
	up       bool          // Connect reported the link up
	refused  error         // why a Guard closed the last pipe
	closed   bool
}

// dial opens the socket of a pipe that mangos asks for.
func (c *conn) dial(ctx context.Context) (net.Conn, error) {
	c.mu.Lock()
	addr := c.addr
	c.mu.Unlock()
	nc, err := c.dialer.DialContext(ctx, c.t.network, addr)
	if err != nil {
		return nil, err
	}
	return connector.NewGuard(nc, &framing{ipc: c.t.network == "unix"}, &connector.GuardOptions{
		Max: c.t.max, What: "nng message",
		Refused: func(err error) {
			c.mu.Lock()
			c.refused = err
			c.mu.Unlock()
		},
	}), nil
}

func (c *conn) pipeEvent(ev mangos.PipeEvent, _ mangos.Pipe) {
	c.mu.Lock()
	var lost bool
	switch ev {
	case mangos.PipeEventAttached:
		c.pipes++
		if c.pipes == 1 {
			close(c.attached)
		}
	case mangos.PipeEventDetached:
		c.pipes--
		if c.pipes == 0 {
			c.attached = make(chan struct{})
			lost, c.up = c.up, false
		}
	}
	why := errors.New("the peer went away")
	if c.refused != nil {
		why = fmt.Errorf("closed the link: %w", c.refused)
		c.refused = nil
	}
	c.mu.Unlock()
	if lost {
		c.ev.Lost(why)
	}
}

// Connect implements connector.Conn.
func (c *conn) Connect(ctx context.Context) error {
	peer, err := c.t.probeAddr(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errors.New("nng: connection closed")
	}
	// mangos redials by itself after a drop, through c.dial: to the
	// address the probe reached, not a name that could resolve elsewhere
	// later, and through the policy's dialer all the same.
	c.addr = c.t.addr
	if c.t.network == "tcp" {
		c.addr = peer.String()
	}
	if c.md == nil {
		scheme := tcpScheme
		if c.t.network == "unix" {
			scheme = ipcScheme
		}
		d, err := c.sock.NewDialer(scheme+"://"+c.addr, map[string]any{
			mangos.OptionDialAsynch: true,
			optDial:                 c.dial,
		})
		if err == nil {
			err = d.Dial()
		}
		if err != nil {
			c.mu.Unlock()
			return fmt.Errorf("dial %s: %w", c.t.url, err)
		}
		c.md = d
	}
	attached := c.attached
	c.mu.Unlock()
	select {
	case <-attached:
	case <-ctx.Done():
		return fmt.Errorf("%s answered the handshake, but the socket did not attach: %w", c.t.url, ctx.Err())
	}
	c.mu.Lock()
	c.up = c.pipes > 0
	up := c.up
	c.mu.Unlock()
	if !up {
		return fmt.Errorf("%s went away while attaching", c.t.url)
	}
	return nil
}

// PeerAddr implements connector.Peer: the peer's host:port over TCP.
func (c *conn) PeerAddr() string {
	if c.t.network != "tcp" {
		return ""
	}
	return c.t.addr
}

// Client implements connector.Conn; the Manager calls View instead.
func (c *conn) Client(ref string) any { v, _ := c.View(ref); return v }

// View implements connector.Viewer: a view of the shared socket for one
// attach of ref; end closes the contexts it opened.
func (c *conn) View(ref string) (any, func()) {
	v := &view{Socket: c.sock, c: c, s: scope.New(ref)}
	return v, func() {
		v.s.End()
		v.mu.Lock()
		ctxs := v.ctxs
		v.ctxs = nil
		v.mu.Unlock()
		for _, x := range ctxs {
			x.Close()
		}
	}
}

// sent passes on the error of a send, noting the activity of one that
// went.
func (c *conn) sent(err error) error {
	if err == nil {
		c.active()
	}
	return err
}

func (c *conn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return c.sock.Close()
}

// probe dials the peer and exchanges the SP header, all under ctx: it
// fails at once on a closed port, and with ctx on a silent peer.
func (t *target) probe(ctx context.Context) error {
	_, err := t.probeAddr(ctx)
	return err
}

// probeAddr probes and returns the address it reached.
func (t *target) probeAddr(ctx context.Context) (net.Addr, error) {
	var nc net.Conn
	var err error
	if t.network == "tcp" {
		nc, err = connector.Dial(ctx, t.network, t.addr, nil)
	} else {
		start := time.Now()
		nc, err = connector.Dialer(ctx).DialContext(ctx, t.network, t.addr)
		connector.StepDone(ctx, "connect", start, err)
	}
	if err != nil {
		return nil, connector.CheckFailed(connector.NetReason(err), fmt.Errorf("dial %s: %w", t.url, err))
	}
	addr := nc.RemoteAddr()
	err = t.handshake(ctx, nc)
	connector.StepNext(ctx, "handshake", err)
	return addr, err
}

func (t *target) handshake(ctx context.Context, nc net.Conn) error {
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	hdr := [8]byte{0, 'S', 'P', 0}
	binary.BigEndian.PutUint16(hdr[4:], t.protocol.self)
	if _, err := nc.Write(hdr[:]); err != nil {
		return t.probeErr(ctx, err)
	}
	var peer [8]byte
	if _, err := io.ReadFull(nc, peer[:]); err != nil {
		return t.probeErr(ctx, err)
	}
	if peer[0] != 0 || peer[1] != 'S' || peer[2] != 'P' || peer[3] != 0 {
		return connector.CheckFailed(connector.ReasonUnreachable, fmt.Errorf("%s does not speak nng (SP)", t.url))
	}
	if got := binary.BigEndian.Uint16(peer[4:]); got != t.protocol.peer {
		return connector.CheckFailed(connector.ReasonUnreachable, fmt.Errorf("the peer at %s speaks protocol %d, which cannot talk to this socket's; check protocol", t.url, got))
	}
	return nil
}

func (t *target) probeErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return connector.CheckFailed(connector.ReasonTimeout, fmt.Errorf("%s accepted the connection but did not answer the handshake: %w", t.url, ctx.Err()))
	}
	return connector.CheckFailed(connector.NetReason(err), fmt.Errorf("handshake with %s: %w", t.url, err))
}

// CheckSource implements connector.SourceChecker: the SP handshake.
func (Connector) CheckSource(ctx context.Context, raw map[string]any) error { return check(ctx, raw) }

// CheckSink implements connector.SinkChecker: the SP handshake.
func (Connector) CheckSink(ctx context.Context, raw map[string]any) error { return check(ctx, raw) }

func check(ctx context.Context, raw map[string]any) error {
	p, _, err := schema.DecodeCheck(raw, nil)
	if err != nil {
		return err
	}
	t, err := parse(p)
	if err != nil {
		return err
	}
	return t.probe(ctx)
}

// Attach attaches ref to the connection id of a (such as a
// *connection.Manager) and returns its socket view. A connection of
// another type is refused before anything is recorded. Release it with
// Detach(id, ref).
func Attach(ctx context.Context, a connector.Attacher, id, ref string) (mangos.Socket, error) {
	return Socket(connector.AttachAs[*view](ctx, a, id, ref))
}

// Socket returns the socket view that Attach of a Manager handed out, for
// use as
//
//	s, err := nng.Socket(m.Attach(ctx, id, ref))
//
// On a connection of another type it fails and the ref stays attached:
// prefer Attach, which checks first.
func Socket(client any, err error) (mangos.Socket, error) {
	v, err := connector.As[*view](client, err)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// ErrClosed is the error of an operation on a view whose connection was
// closed: updated, deleted, or its Manager closed.
var ErrClosed = errors.New("nng: the connection was closed; attach again")

// errOwned refuses what would change the shared socket for every attach.
var errOwned = errors.New("nng: the socket is shared and the Manager owns it: its endpoints and its life are the connection's; Detach to stop using it")

// view is the mangos.Socket one attach gets: the shared socket, until the
// attach is released. Info is the socket's, whatever happens.
type view struct {
	mangos.Socket
	c *conn
	s *scope.Scope

	mu   sync.Mutex
	ctxs []mangos.Context
}

func (v *view) err() error {
	if err := v.s.Err("nng"); err != nil {
		return err
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	if v.c.closed {
		return ErrClosed
	}
	return nil
}

func (v *view) Send(b []byte) error {
	if err := v.err(); err != nil {
		return err
	}
	return v.c.sent(v.Socket.Send(b))
}

func (v *view) SendMsg(m *mangos.Message) error {
	if err := v.err(); err != nil {
		return err
	}
	return v.c.sent(v.Socket.SendMsg(m))
}

func (v *view) Recv() ([]byte, error) {
	m, err := v.RecvMsg()
	if err != nil {
		return nil, err
	}
	// Free recycles the body: copy it first, as mangos does.
	b := append([]byte(nil), m.Body...)
	m.Free()
	return b, nil
}

func (v *view) RecvMsg() (*mangos.Message, error) {
	if err := v.err(); err != nil {
		return nil, err
	}
	m, err := v.Socket.RecvMsg()
	if err == nil {
		v.c.active()
		if derr := v.s.Err("nng"); derr != nil {
			// Released while waiting: it receives nothing more.
			m.Free()
			return nil, derr
		}
	}
	return m, err
}

func (v *view) GetOption(name string) (any, error) {
	if err := v.err(); err != nil {
		return nil, err
	}
	return v.Socket.GetOption(name)
}

func (v *view) SetOption(name string, value any) error {
	if err := v.err(); err != nil {
		return err
	}
	return v.Socket.SetOption(name, value)
}

// OpenContext opens a context of the shared socket, closed when the attach
// is released.
func (v *view) OpenContext() (mangos.Context, error) {
	if err := v.err(); err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.s.Err("nng"); err != nil {
		return nil, err
	}
	x, err := v.Socket.OpenContext()
	if err != nil {
		return nil, err
	}
	v.ctxs = append(v.ctxs, x)
	return &ctxView{Context: x, v: v}, nil
}

// ctxView is a context of the shared socket opened through a view: it
// fails as the view does once the attach is released (it is closed then).
type ctxView struct {
	mangos.Context
	v *view
}

func (c *ctxView) Send(b []byte) error {
	if err := c.v.err(); err != nil {
		return err
	}
	return c.v.c.sent(c.Context.Send(b))
}

func (c *ctxView) SendMsg(m *mangos.Message) error {
	if err := c.v.err(); err != nil {
		return err
	}
	return c.v.c.sent(c.Context.SendMsg(m))
}

func (c *ctxView) Recv() ([]byte, error) {
	if err := c.v.err(); err != nil {
		return nil, err
	}
	b, err := c.Context.Recv()
	if err == nil {
		c.v.c.active()
	}
	if derr := c.v.s.Err("nng"); err != nil && derr != nil {
		return nil, derr // closed by the release
	}
	return b, err
}

func (c *ctxView) RecvMsg() (*mangos.Message, error) {
	if err := c.v.err(); err != nil {
		return nil, err
	}
	m, err := c.Context.RecvMsg()
	if err == nil {
		c.v.c.active()
	}
	if derr := c.v.s.Err("nng"); err != nil && derr != nil {
		return nil, derr
	}
	return m, err
}

func (c *ctxView) GetOption(name string) (any, error) {
	if err := c.v.err(); err != nil {
		return nil, err
	}
	return c.Context.GetOption(name)
}

func (c *ctxView) SetOption(name string, value any) error {
	if err := c.v.err(); err != nil {
		return err
	}
	return c.Context.SetOption(name, value)
}

// Close does not close the shared socket: Detach instead.
func (v *view) Close() error { return errOwned }

func (v *view) Dial(string) error                          { return errOwned }
func (v *view) DialOptions(string, map[string]any) error   { return errOwned }
func (v *view) Listen(string) error                        { return errOwned }
func (v *view) ListenOptions(string, map[string]any) error { return errOwned }
func (v *view) NewDialer(string, map[string]any) (mangos.Dialer, error) {
	return nil, errOwned
}
func (v *view) NewListener(string, map[string]any) (mangos.Listener, error) {
	return nil, errOwned
}

// SetPipeEventHook does nothing: the connection's status follows the
// pipes through its own hook.
func (v *view) SetPipeEventHook(mangos.PipeEventHook) mangos.PipeEventHook { return nil }
