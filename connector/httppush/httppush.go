// Package httppush is the connection type "httppush": an HTTP listener that
// receives pushed requests for the sources attached to it.
//
// Props:
//
//	addr               listen address; default 127.0.0.1:10081
//	endpoint           default path of Receive; default /
//	method             default method of Receive: POST (default) or PUT
//	bufferLength       requests that may wait for the rules at once; more
//	                   are answered 503 at once; default 16
//	ackTimeout         milliseconds a request waits for every rule on its
//	                   route to take it, then 503; default 5000
//	certificationPath, privateKeyPath: serve HTTPS with this certificate
//
// A source receives the requests sent to its endpoint:
//
//	r, err := httppush.ReceiverOf(m.Attach(ctx, "push", "rule1/source"))
//	msgs, err := r.Receive("/orders", "POST")
//
// Every attach on one endpoint gets every request. A request is answered
// 200 only once every attach on its route has it: received it from its
// channel (Receive, which buffers nothing), or returned nil from its
// handler (Handle, for a rule that must have processed a request before
// it is acknowledged). Until then the client waits; if one has not within
// ackTimeout, or a handler fails, the answer is 503 with Retry-After and
// the client may send it again (those that took it then get it twice).
// So a request answered 200 was in a rule's hands: a crash of the
// process never loses it. At most bufferLength requests wait at once;
// past them a request is answered 503 at once. When the last attach of
// an endpoint is released, its route goes (404). A released attach's Receiver fails with an error that matches
// connector.ErrDetached, and its channels get nothing more. Attach checks
// the type before anything is recorded:
//
//	r, err := httppush.Attach(ctx, m, "push", "rule1/source")
//
// Connections on the same addr share one listener, as eKuiper's do; an
// addr that another program holds is a clear error.
//
// There is no sink side: a sink check answers that it is not supported.
package httppush

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/httpserver"
	"github.com/connkit/connkit/connector/scope"
	"github.com/connkit/connkit/registry"
)

// Type is the name this connection type registers under.
const Type = "httppush"

func init() { registry.Register(Type, Connector{}) }

// Connector is the httppush connector.Type.
type Connector struct{}

// MaxBody caps a pushed request body.
const MaxBody = 8 << 20

var schema = &connector.Schema{Fields: append([]connector.Field{
	{Name: "addr", Kind: connector.String, Default: "127.0.0.1:10081", Endpoint: true, Doc: "listen address, host:port"},
	{Name: "endpoint", Kind: connector.String, Default: "/", Doc: "default path of Receive"},
	{Name: "method", Kind: connector.String, Default: "POST", Allowed: []any{"POST", "PUT"}, Doc: "default method of Receive"},
	{Name: "bufferLength", Kind: connector.Int, Default: 16, Doc: "requests that may wait for the rules at once; more are answered 503 with Retry-After at once"},
	{Name: "ackTimeout", Kind: connector.Int, Default: 5000, Doc: "milliseconds a request waits for every rule on its route to take it (or its handler to return), then 503 with Retry-After"},
}, connector.TLSFields("certificationPath", "privateKeyPath")...)}

// Schema implements connector.Type.
func (Connector) Schema() *connector.Schema { return schema }

type settings struct {
	addr, endpoint, method string
	tls                    *tls.Config
	buffer                 int
	ackTimeout             time.Duration
}

func parse(p connector.Props) (*settings, error) {
	s := &settings{addr: p.String("addr"), endpoint: p.String("endpoint"), method: p.String("method")}
	var fe connector.FieldErrors
	if _, _, err := net.SplitHostPort(s.addr); err != nil {
		fe = append(fe, connector.FieldError{Field: "addr", Message: "want host:port, such as 127.0.0.1:10081"})
	}
	if !strings.HasPrefix(s.endpoint, "/") {
		fe = append(fe, connector.FieldError{Field: "endpoint", Message: "must start with /"})
	}
	if b := p.Int("bufferLength"); b < 1 || b > 100_000 {
		fe = append(fe, connector.FieldError{Field: "bufferLength", Message: "must be from 1 to 100000 requests"})
	} else {
		s.buffer = int(b)
	}
	if ms := p.Int("ackTimeout"); ms < 1 || ms > 600_000 {
		fe = append(fe, connector.FieldError{Field: "ackTimeout", Message: "must be from 1 to 600000 milliseconds"})
	} else {
		s.ackTimeout = time.Duration(ms) * time.Millisecond
	}
	tc, tfe := connector.LoadTLS(p, "")
	fe = append(fe, tfe...)
	if tc != nil && len(tc.Certificates) > 0 {
		s.tls = tc
	}
	if len(fe) > 0 {
		return nil, fe
	}
	return s, nil
}

// Open implements connector.Type. An addr that the Manager's listen
// policy does not allow is refused here, naming addr.
func (Connector) Open(p connector.Props, ev connector.Events) (connector.Conn, error) {
	s, err := parse(p)
	if err != nil {
		return nil, err
	}
	if err := ev.Policy().ListenAllowed(s.addr); err != nil {
		return nil, connector.FieldErrors{{Field: "addr", Message: err.Error()}}
	}
	return &conn{s: s, active: connector.ActiveFunc(ev), routes: map[route]*endpoint{}, slots: make(chan struct{}, s.buffer)}, nil
}

type route struct{ path, method string }

// endpoint is one route and the refs that receive from it.
type endpoint struct {
	// subs is replaced, never modified, so the handler reads it unlocked.
	subs []*subscriber
}

// subscriber is one attach on a route: a channel (Receive) or a handler
// (Handle).
type subscriber struct {
	s  *scope.Scope
	ch chan Message
	h  func(context.Context, Message) error
}

// Message is one pushed request.
type Message struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

type conn struct {
	s      *settings
	active func() // connector.Activity of the Events: a request came in

	slots chan struct{} // one per request waiting for the rules: bufferLength

	mu     sync.Mutex
	srv    *httpserver.Server
	routes map[route]*endpoint
	closed bool
}

// Connect implements connector.Conn: it takes the listener.
func (c *conn) Connect(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("httppush: connection closed")
	}
	if c.srv != nil {
		return nil
	}
	srv, err := httpserver.Acquire(c.s.addr, c.s.tls)
	if err != nil {
		if errors.Is(err, httpserver.ErrInUse) {
			return connector.Permanent(err)
		}
		return err
	}
	for r := range c.routes {
		if err := srv.Handle(r.path, r.method, c.handler(r)); err != nil {
			c.dropRoutes(srv)
			srv.Release()
			return connector.Permanent(err)
		}
	}
	c.srv = srv
	return nil
}

func (c *conn) dropRoutes(srv *httpserver.Server) {
	for r := range c.routes {
		srv.Remove(r.path, r.method)
	}
}

// Client implements connector.Conn; the Manager calls View instead.
func (c *conn) Client(ref string) any { r, _ := c.View(ref); return r }

// View implements connector.Viewer: a Receiver for one attach of ref; end
// stops its deliveries, and a route with no attach left goes.
func (c *conn) View(ref string) (any, func()) {
	r := &Receiver{c: c, s: scope.New(ref)}
	return r, func() {
		r.s.End()
		c.release(r.s)
	}
}

func (c *conn) release(sc *scope.Scope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for r, ep := range c.routes {
		if !slices.ContainsFunc(ep.subs, func(s *subscriber) bool { return s.s == sc }) {
			continue
		}
		keep := slices.DeleteFunc(slices.Clone(ep.subs), func(s *subscriber) bool { return s.s == sc })
		ep.subs = keep
		if len(keep) == 0 {
			delete(c.routes, r)
			if c.srv != nil {
				c.srv.Remove(r.path, r.method)
			}
		}
	}
}

func (c *conn) Close() error {
	c.mu.Lock()
	c.closed = true
	srv := c.srv
	c.srv = nil
	if srv != nil {
		c.dropRoutes(srv)
	}
	c.mu.Unlock()
	if srv != nil {
		srv.Release()
	}
	return nil
}

func (c *conn) handler(r route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxBody))
		if err != nil {
			http.Error(w, "body over 8 MiB or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
		c.active()
		select {
		case c.slots <- struct{}{}:
			defer func() { <-c.slots }()
		default:
			busy(w, fmt.Sprintf("%d requests wait for the rules already (bufferLength)", cap(c.slots)))
			return
		}
		c.mu.Lock()
		var subs []*subscriber
		if ep := c.routes[r]; ep != nil {
			subs = ep.subs
		}
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(req.Context(), c.s.ackTimeout)
		defer cancel()
		msg := Message{Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone(), Body: body}
		taken := 0
		for _, s := range subs {
			if s.s.Ended() {
				continue // released meanwhile: it is owed nothing
			}
			if s.h != nil {
				// The handler's context ends with its attach, too.
				hctx, hcancel := context.WithCancel(ctx)
				go func() {
					select {
					case <-s.s.Done():
						hcancel()
					case <-hctx.Done():
					}
				}()
				err := s.h(hctx, msg)
				hcancel()
				switch {
				case err == nil && !s.s.Ended():
					taken++
				case err != nil && !s.s.Ended():
					busy(w, "a rule did not process the request: "+connector.Truncate(err.Error(), 256))
					return
				}
				continue
			}
			if scope.Send(s.s, s.ch, msg, ctx.Done(), nil) {
				taken++
			} else if !s.s.Ended() {
				busy(w, fmt.Sprintf("a rule did not take the request within %v (ackTimeout)", c.s.ackTimeout))
				return
			}
		}
		if taken == 0 {
			// Every rule of the route was released meanwhile, or the
			// route went: nobody has the request.
			busy(w, "no rule took the request")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{\"ok\":true}\n")
	})
}

// busy answers 503 with Retry-After: the request was not taken, and may
// be sent again.
func busy(w http.ResponseWriter, why string) {
	w.Header().Set("Retry-After", "1")
	http.Error(w, why+"; retry", http.StatusServiceUnavailable)
}

// Receiver is what one attach of an httppush connection gets.
type Receiver struct {
	c *conn
	s *scope.Scope
}

// ErrClosed is the error of Receive on a Receiver whose connection was
// closed: updated, deleted, or its Manager closed.
var ErrClosed = errors.New("httppush: the connection was closed; attach again")

// Addr is the address the listener is bound to, once connected.
func (r *Receiver) Addr() string {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	if r.c.srv == nil {
		return ""
	}
	return r.c.srv.Addr().String()
}

// Receive starts delivering the requests to path with method to the
// returned channel, which is never closed: it gets nothing more once the
// attach is released. An empty path or method means the connection's
// endpoint or method. The channel buffers nothing: a request is answered
// once it is received from it (and from the channels of the other
// attaches on the route).
func (r *Receiver) Receive(path, method string) (<-chan Message, error) {
	s := &subscriber{s: r.s, ch: make(chan Message)}
	if err := r.add(path, method, s); err != nil {
		return nil, err
	}
	return s.ch, nil
}

// Handle calls h with every request to path with method, in the request's
// goroutine; the request is answered 200 once h (and the other attaches
// on the route) returned nil, and 503 with Retry-After if h returns an
// error. h must return when ctx ends (ackTimeout, the client gone, or
// the attach released).
// It is called no more once the attach is released. An empty path or
// method means the connection's endpoint or method.
func (r *Receiver) Handle(path, method string, h func(ctx context.Context, m Message) error) error {
	if h == nil {
		return errors.New("httppush: Handle needs a handler")
	}
	return r.add(path, method, &subscriber{s: r.s, h: h})
}

func (r *Receiver) add(path, method string, s *subscriber) error {
	if err := r.s.Err("httppush"); err != nil {
		return err
	}
	if path == "" {
		path = r.c.s.endpoint
	}
	if method == "" {
		method = r.c.s.method
	}
	method = strings.ToUpper(method)
	if method != http.MethodPost && method != http.MethodPut {
		return fmt.Errorf("httppush: method %s is not supported; use POST or PUT", method)
	}
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("httppush: path %q must start with /", path)
	}
	rt := route{path, method}
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := r.s.Err("httppush"); err != nil {
		// Checked again under the lock that end takes.
		return err
	}
	if c.closed {
		return ErrClosed
	}
	ep := c.routes[rt]
	if ep == nil {
		if c.srv != nil {
			if err := c.srv.Handle(path, method, c.handler(rt)); err != nil {
				return err
			}
		}
		ep = &endpoint{}
		c.routes[rt] = ep
	}
	ep.subs = append(append([]*subscriber(nil), ep.subs...), s)
	return nil
}

// CheckSource implements connector.SourceChecker: the addr can be bound,
// or this program serves it already.
func (Connector) CheckSource(ctx context.Context, raw map[string]any) error {
	p, _, err := schema.DecodeCheck(raw, nil)
	if err != nil {
		return err
	}
	s, err := parse(p)
	if err != nil {
		return err
	}
	if err := connector.PolicyFrom(ctx).ListenAllowed(s.addr); err != nil {
		return err
	}
	if httpserver.Serves(s.addr) {
		return nil
	}
	start := time.Now()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.addr)
	connector.StepDone(ctx, "listen", start, err)
	if err != nil {
		return connector.CheckFailed(connector.ReasonUnreachable, fmt.Errorf("cannot listen on %s: %w", s.addr, err))
	}
	return ln.Close()
}

// Attach attaches ref to the connection id of a (such as a
// *connection.Manager) and returns its Receiver. A connection of another
// type is refused before anything is recorded. Release it with Detach(id,
// ref).
func Attach(ctx context.Context, a connector.Attacher, id, ref string) (*Receiver, error) {
	return ReceiverOf(connector.AttachAs[*Receiver](ctx, a, id, ref))
}

// ReceiverOf returns the Receiver that Attach of a Manager handed out, for
// use as
//
//	r, err := httppush.ReceiverOf(m.Attach(ctx, id, ref))
//
// On a connection of another type it fails and the ref stays attached:
// prefer Attach, which checks first.
func ReceiverOf(client any, err error) (*Receiver, error) {
	return connector.As[*Receiver](client, err)
}
