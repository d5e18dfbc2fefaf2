// Package websocket is the connection type "websocket", on
// github.com/coder/websocket (the maintained successor of
// nhooyr.io/websocket).
//
// Props:
//
//	addr             host:port of the peer; empty means server mode
//	path             the peer's path, or the path served; default /
//	scheme           ws (default) or wss
//	requestHeader    headers of the handshake; every value is secret
//	insecureSkipVerify, certificationPath, privateKeyPath, rootCaPath: TLS
//	listenAddr       server mode: the address served; default 127.0.0.1:10081
//	maxMessageBytes  the largest message a peer may send; default 1 MiB
//
// In client mode the connection dials the peer and, unlike eKuiper, dials
// again with backoff after the peer drops it. In server mode it serves path
// on listenAddr (shared with httppush connections on the same address);
// peers connect to it, every message of any peer reaches every ref, and a
// Write goes to every peer.
//
//	c, err := websocket.Attach(ctx, m, "ws", "rule1/sink")
//	err = c.Write(ctx, []byte(`{"t":1}`))
//	for msg := range c.Receive() { ... }
//
// The handshake follows no redirect (a 3xx fails, naming the status and
// the Location's host), so a secret header never reaches another host; its
// response head is bounded, and so is every frame a peer sends: a frame or
// message over maxMessageBytes closes the link, saying so.
//
// Each attach gets a Client of its own. Once the attach is released,
// Write fails with an error that matches connector.ErrDetached and its
// Receive channels get nothing more.
package websocket

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	ws "github.com/coder/websocket"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/httpserver"
	"github.com/connkit/connkit/connector/internal/wsdial"
	"github.com/connkit/connkit/connector/scope"
	"github.com/connkit/connkit/registry"
)

// Type is the name this connection type registers under.
const Type = "websocket"

func init() { registry.Register(Type, Connector{}) }

// Connector is the websocket connector.Type.
type Connector struct{}

var schema = &connector.Schema{Fields: append([]connector.Field{
	{Name: "addr", Kind: connector.String, Endpoint: true, Doc: "host:port of the peer; empty means server mode"},
	{Name: "path", Kind: connector.String, Default: "/", Endpoint: true, Doc: "the peer's path, or the path served"},
	{Name: "scheme", Kind: connector.String, Default: "ws", Allowed: []any{"ws", "wss"}, Endpoint: true, Doc: "ws or wss"},
	{Name: "requestHeader", Kind: connector.Map, SecretKeys: []string{"*"}, Doc: "headers of the handshake; every value is secret (an X-Api-Key as much as an Authorization)"},
	{Name: "listenAddr", Kind: connector.String, Default: "127.0.0.1:10081", Doc: "server mode: the address served"},
	connector.MaxMessageField(connector.DefaultMaxMessageBytes, "the largest message a peer may send; a larger one closes its link"),
}, connector.TLSFields()...)}

// Schema implements connector.Type.
func (Connector) Schema() *connector.Schema { return schema }

type settings struct {
	url    string // client mode
	listen string // server mode
	path   string
	header http.Header
	tls    *tls.Config
	max    int64 // maxMessageBytes
}

func (s *settings) server() bool { return s.url == "" }

func parse(p connector.Props) (*settings, error) {
	var fe connector.FieldErrors
	s := &settings{path: p.String("path"), header: http.Header{}}
	if !strings.HasPrefix(s.path, "/") {
		fe = append(fe, connector.FieldError{Field: "path", Message: "must start with /"})
	}
	if strings.ContainsAny(s.path, "?#") {
		// A token in a query would be shown as it is: credentials go in
		// requestHeader, whose values are secret.
		fe = append(fe, connector.FieldError{Field: "path", Message: "give the path alone, without ? or #; put credentials in requestHeader"})
	}
	for k, v := range p.Map("requestHeader") {
		str, ok := v.(string)
		if !ok {
			fe = append(fe, connector.FieldError{Field: "requestHeader", Message: fmt.Sprintf("header %s: want a string", k)})
			continue
		}
		s.header.Set(k, str)
	}
	if addr := p.String("addr"); addr != "" {
		if _, port, err := net.SplitHostPort(addr); err != nil {
			fe = append(fe, connector.FieldError{Field: "addr", Message: "want host:port, or empty for server mode"})
		} else if msg := connector.BadPort(port); msg != "" {
			fe = append(fe, connector.FieldError{Field: "addr", Message: msg})
		}
		s.url = (&url.URL{Scheme: p.String("scheme"), Host: addr, Path: s.path}).String()
	} else {
		s.listen = p.String("listenAddr")
		if _, port, err := net.SplitHostPort(s.listen); err != nil {
			fe = append(fe, connector.FieldError{Field: "listenAddr", Message: "want host:port"})
		} else if msg := connector.BadPort(port); msg != "" && port != "0" {
			fe = append(fe, connector.FieldError{Field: "listenAddr", Message: msg})
		}
	}
	max, mfe := connector.MaxMessage(p)
	fe = append(fe, mfe...)
	s.max = max
	host, _, _ := net.SplitHostPort(p.String("addr"))
	tc, tfe := connector.LoadTLS(p, host)
	fe = append(fe, tfe...)
	switch {
	case s.server() && tc != nil && len(tc.Certificates) == 0:
		tc = nil // a server without a certificate serves plain ws
	case !s.server() && tc == nil && p.String("scheme") == "wss":
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	s.tls = tc
	if len(fe) > 0 {
		return nil, fe
	}
	return s, nil
}

// Open implements connector.Type. In server mode, a listenAddr that the
// Manager's listen policy does not allow is refused here.
func (Connector) Open(p connector.Props, ev connector.Events) (connector.Conn, error) {
	s, err := parse(p)
	if err != nil {
		return nil, err
	}
	if s.server() {
		if err := ev.Policy().ListenAllowed(s.listen); err != nil {
			return nil, connector.FieldErrors{{Field: "listenAddr", Message: err.Error()}}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{s: s, ev: ev, active: connector.ActiveFunc(ev), ctx: ctx, cancel: cancel, peers: map[*ws.Conn]struct{}{}}, nil
}

// dial performs the handshake with the peer.
func (s *settings) dial(ctx context.Context) (*ws.Conn, error) {
	c, res, err := wsdial.Dial(ctx, s.url, &wsdial.Options{Header: s.header, TLS: s.tls, Max: s.max})
	connector.StepNext(ctx, "handshake", err)
	if err != nil {
		reason := connector.NetReason(err)
		switch {
		case res != nil && (res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden):
			reason = connector.ReasonUnauthorized
		case errors.Is(err, connector.ErrTooLarge), errors.Is(err, wsdial.ErrRedirect):
			reason = connector.ReasonUnreachable
		}
		return nil, connector.CheckFailed(reason, fmt.Errorf("handshake with %s: %w", s.url, err))
	}
	return c, nil
}

type conn struct {
	s  *settings
	ev connector.Events
	// active is connector.Activity of ev: a message was written or read.
	active func()
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // readers

	mu     sync.Mutex
	cur    *ws.Conn // client mode: the live link
	srv    *httpserver.Server
	peers  map[*ws.Conn]struct{} // server mode
	subs   []*subscriber
	closed bool
}

type subscriber struct {
	s  *scope.Scope
	ch chan []byte
}

// Connect implements connector.Conn: the handshake in client mode, the
// route in server mode.
func (c *conn) Connect(ctx context.Context) error {
	if c.s.server() {
		return c.serve()
	}
	// A redial (a loss, or the Manager's Reconnect) replaces the link:
	// the old one is closed first, and its reader ends without a loss.
	c.mu.Lock()
	stale := c.cur
	c.cur = nil
	c.mu.Unlock()
	if stale != nil {
		stale.CloseNow()
	}
	link, err := c.s.dial(ctx)
	if err != nil {
		var ce *connector.CheckError
		if errors.As(err, &ce) && ce.Reason == connector.ReasonUnauthorized {
			return connector.Permanent(err)
		}
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		link.CloseNow()
		return errors.New("websocket: connection closed")
	}
	c.cur = link
	c.wg.Add(1)
	c.mu.Unlock()
	go c.read(link, true)
	return nil
}

func (c *conn) serve() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("websocket: connection closed")
	}
	if c.srv != nil {
		return nil
	}
	srv, err := httpserver.Acquire(c.s.listen, c.s.tls)
	if err != nil {
		return connector.Permanent(err)
	}
	if err := srv.Handle(c.s.path, "", http.HandlerFunc(c.accept)); err != nil {
		srv.Release()
		return connector.Permanent(err)
	}
	c.srv = srv
	return nil
}

func (c *conn) accept(w http.ResponseWriter, r *http.Request) {
	link, err := ws.Accept(w, r, nil)
	if err != nil {
		return
	}
	link.SetReadLimit(c.s.max)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		link.CloseNow()
		return
	}
	c.peers[link] = struct{}{}
	c.wg.Add(1)
	c.mu.Unlock()
	c.read(link, false)
}

// read delivers link's messages to every ref until it fails.
func (c *conn) read(link *ws.Conn, client bool) {
	defer c.wg.Done()
	for {
		_, data, err := link.Read(c.ctx)
		if err != nil {
			link.CloseNow()
			c.mu.Lock()
			delete(c.peers, link)
			lost := client && c.cur == link && !c.closed
			if lost {
				c.cur = nil
			}
			c.mu.Unlock()
			if lost {
				c.ev.Lost(c.s.lostErr(err))
			}
			return
		}
		c.active()
		c.mu.Lock()
		subs := c.subs
		c.mu.Unlock()
		for _, s := range subs {
			scope.Send(s.s, s.ch, data, c.ctx.Done(), nil)
		}
	}
}

// lostErr says why a link ended: a message over the limit is named so,
// with the prop to raise.
func (s *settings) lostErr(err error) error {
	switch {
	case errors.Is(err, connector.ErrTooLarge):
		return fmt.Errorf("closed the link: %w", err)
	case errors.Is(err, ws.ErrMessageTooBig):
		return fmt.Errorf("closed the link: the peer sent a message over %s (%d); raise %s to accept it: %w",
			connector.MaxMessageProp, s.max, connector.MaxMessageProp, err)
	}
	return fmt.Errorf("the peer dropped the link: %w", err)
}

// PeerAddr implements connector.Peer: the peer's host:port in client
// mode.
func (c *conn) PeerAddr() string {
	if c.s.server() {
		return ""
	}
	u, err := url.Parse(c.s.url)
	if err != nil {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"ws": "80", "wss": "443"}[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// Client implements connector.Conn; the Manager calls View instead.
func (c *conn) Client(ref string) any { cl, _ := c.View(ref); return cl }

// View implements connector.Viewer: a Client for one attach of ref; end
// stops its deliveries.
func (c *conn) View(ref string) (any, func()) {
	cl := &Client{c: c, s: scope.New(ref)}
	return cl, func() {
		cl.s.End()
		c.mu.Lock()
		defer c.mu.Unlock()
		c.subs = slices.DeleteFunc(slices.Clone(c.subs), func(s *subscriber) bool { return s.s == cl.s })
	}
}

func (c *conn) Close() error {
	c.mu.Lock()
	c.closed = true
	links := make([]*ws.Conn, 0, len(c.peers)+1)
	if c.cur != nil {
		links = append(links, c.cur)
	}
	for p := range c.peers {
		links = append(links, p)
	}
	srv := c.srv
	c.mu.Unlock()
	if srv != nil {
		srv.Remove(c.s.path, "")
	}
	// Cancelling the readers' context closes their links; CloseNow is for
	// a link whose reader has not started. No close handshake: a dead peer
	// would hold it for seconds.
	c.cancel()
	for _, l := range links {
		l.CloseNow()
	}
	c.wg.Wait()
	if srv != nil {
		srv.Release()
	}
	return nil
}

// Client is what one attach of a websocket connection gets.
type Client struct {
	c *conn
	s *scope.Scope
}

// ErrNotConnected is the error of a Write while no peer is linked.
var ErrNotConnected = errors.New("websocket: not connected; the Manager is redialing")

// ErrClosed is the error of a Write on a Client whose connection was
// closed: updated, deleted, or its Manager closed.
var ErrClosed = errors.New("websocket: the connection was closed; attach again")

// Write sends data as a text message: to the peer in client mode, to every
// peer in server mode.
func (cl *Client) Write(ctx context.Context, data []byte) error {
	if err := cl.s.Err("websocket"); err != nil {
		return err
	}
	c := cl.c
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	var links []*ws.Conn
	if c.cur != nil {
		links = append(links, c.cur)
	}
	for p := range c.peers {
		links = append(links, p)
	}
	c.mu.Unlock()
	if len(links) == 0 {
		return ErrNotConnected
	}
	var errs []error
	for _, l := range links {
		if err := l.Write(ctx, ws.MessageText, data); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) < len(links) {
		c.active() // written to one peer at least
	}
	return errors.Join(errs...)
}

// Receive returns a channel of the messages received from now on. It is
// not closed when the attach is released, but gets nothing more; after the
// release Receive returns a closed channel. A Client that does not read
// holds up the others.
func (cl *Client) Receive() <-chan []byte {
	s := &subscriber{s: cl.s, ch: make(chan []byte, 64)}
	c := cl.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl.s.Ended() {
		// Checked under the lock that end takes.
		close(s.ch)
		return s.ch
	}
	c.subs = append(slices.Clone(c.subs), s)
	return s.ch
}

// Addr is the address served, in server mode, once connected.
func (cl *Client) Addr() string {
	c := cl.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv == nil {
		return ""
	}
	return c.srv.Addr().String()
}

// Peers is how many peers are linked.
func (cl *Client) Peers() int {
	c := cl.c
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.peers)
	if c.cur != nil {
		n++
	}
	return n
}

// CheckSource implements connector.SourceChecker: the handshake with the
// peer, or in server mode that listenAddr can be bound or is ours.
func (Connector) CheckSource(ctx context.Context, raw map[string]any) error { return check(ctx, raw) }

// CheckSink implements connector.SinkChecker, as CheckSource.
func (Connector) CheckSink(ctx context.Context, raw map[string]any) error { return check(ctx, raw) }

func check(ctx context.Context, raw map[string]any) error {
	p, _, err := schema.DecodeCheck(raw, nil)
	if err != nil {
		return err
	}
	s, err := parse(p)
	if err != nil {
		return err
	}
	if s.server() {
		if err := connector.PolicyFrom(ctx).ListenAllowed(s.listen); err != nil {
			return err
		}
		if httpserver.Serves(s.listen) {
			return nil
		}
		start := time.Now()
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.listen)
		connector.StepDone(ctx, "listen", start, err)
		if err != nil {
			return connector.CheckFailed(connector.ReasonUnreachable, fmt.Errorf("cannot listen on %s: %w", s.listen, err))
		}
		return ln.Close()
	}
	link, err := s.dial(ctx)
	if err != nil {
		return err
	}
	link.Close(ws.StatusNormalClosure, "check done")
	return nil
}

// Attach attaches ref to the connection id of a (such as a
// *connection.Manager) and returns its Client. A connection of another
// type is refused before anything is recorded. Release it with Detach(id,
// ref).
func Attach(ctx context.Context, a connector.Attacher, id, ref string) (*Client, error) {
	return ClientOf(connector.AttachAs[*Client](ctx, a, id, ref))
}

// ClientOf returns the Client that Attach of a Manager handed out, for use
// as
//
//	c, err := websocket.ClientOf(m.Attach(ctx, id, ref))
//
// On a connection of another type it fails and the ref stays attached:
// prefer Attach, which checks first.
func ClientOf(client any, err error) (*Client, error) { return connector.As[*Client](client, err) }
