// Package mqtt is the connection type "mqtt": one MQTT session to a broker,
// shared by every rule attached to it, with eKuiper's property names.
//
// Props:
//
//	server              tcp://host:1883, ssl://host:8883, ws://host/mqtt or
//	                    wss://host/mqtt (required)
//	protocolVersion     "3.1" or "3.1.1" (default)
//	clientid            the session's client id; default connkit-<random>
//	username, password  credentials; the password is secret
//	keepAlive           seconds between keep-alive pings; default 30
//	enableClientSession keep the session at the broker (clean session
//	                    off): its subscriptions and the QoS 1/2 messages
//	                    it queues while connkit is away; needs clientid
//	publishBuffer       QoS 1/2 publishes owed to the broker (queued while
//	                    down, or not yet acknowledged); default 1000; past
//	                    it Publish fails with ErrBufferFull; 0 queues none
//	clientStatePath     a directory where those publishes are kept until
//	                    acknowledged, so a restart loses none; needs
//	                    clientid
//	maxMessageBytes     the largest packet the broker may send (its remaining
//	                    length); default 1 MiB
//	insecureSkipVerify, certificationPath, privateKeyPath, rootCaPath: TLS
//
// An engine gets a paho mqtt.Client with Attach:
//
//	c, err := mqtt.Attach(ctx, m, "broker", "rule1/source")
//	c.Subscribe("sensors/#", 1, handle)
//
// The client is a view of the shared session for one attach.
// Subscriptions are counted per topic: the broker subscription stays while
// any attach holds it, and releasing an attach drops only its own. They
// are restored after every reconnect. Connect and Disconnect of the view
// do nothing: the Manager owns the session. Once the attach is released
// (Detach, or Close of its Handle), every operation of the view fails with
// an error that matches connector.ErrDetached, IsConnected is false, and
// its handlers are called no more (a call already under way finishes).
//
// Attach checks the type before anything is recorded:
//
//	c, err := mqtt.Attach(ctx, m, "broker", "rule1/source")
//
// A QoS 1 or 2 Publish never waits for the network: it is queued and
// sent in order by one pump per link, the queue of a down link first on
// the next; its token completes when the broker acknowledged the message
// (see Publish of the view). QoS 0 is never queued.
//
// Each dial uses a fresh paho client (paho documents that reusing one after
// a disconnect is unsafe), with the same client id; a dial is cancelled by
// closing its socket when its context ends, so a broker that accepts and
// never answers cannot hold it.
//
// No broker can make a dial read more than connector.HandshakeBudget
// before its CONNACK, whatever its packets claim; after it, a packet over
// maxMessageBytes closes the session with an error that names the prop
// (status shows it) and the Manager dials again. MQTT over WebSocket
// follows no redirect: a password never goes to another host.
package mqtt

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/fanout"
	"github.com/connkit/connkit/connector/internal/mqttdial"
	"github.com/connkit/connkit/connector/scope"
	"github.com/connkit/connkit/registry"
)

// Type is the name this connection type registers under.
const Type = "mqtt"

func init() { registry.Register(Type, Connector{}) }

// Connector is the mqtt connector.Type.
type Connector struct{}

var schema = &connector.Schema{Fields: append([]connector.Field{
	{Name: "server", Kind: connector.URL, Required: true, Secret: true, Endpoint: true,
		Doc: "broker URL: tcp://host:1883, ssl://host:8883, ws://host/mqtt or wss://host/mqtt; a password in it is secret"},
	{Name: "protocolVersion", Kind: connector.String, Default: "3.1.1", Allowed: []any{"3.1", "3.1.1"}, Doc: "MQTT protocol version; MQTT 5 is not supported"},
	{Name: "clientid", Kind: connector.String, Doc: "client id of the shared session; default connkit-<random>"},
	{Name: "username", Kind: connector.String, Endpoint: true, Doc: "user name"},
	{Name: "password", Kind: connector.String, Secret: true, Doc: "password"},
	{Name: "keepAlive", Kind: connector.Int, Default: 30, Doc: "seconds between keep-alive pings"},
	{Name: "enableClientSession", Kind: connector.Bool, Default: false, Doc: "keep the session at the broker across reconnects (clean session off): its subscriptions stay and it queues QoS 1 and 2 messages while connkit is away; needs a clientid"},
	{Name: "publishBuffer", Kind: connector.Int, Default: defaultPublishBuffer, Doc: "QoS 1 and 2 publishes the connection may owe the broker, queued while the link is down or sent and not yet acknowledged; past it a publish fails at once; 0 queues none (a publish while down fails)"},
	{Name: "clientStatePath", Kind: connector.String, Doc: "a directory where QoS 1 and 2 publishes are kept on disk until the broker acknowledges them, so that a restart of the process loses none; needs a clientid"},
	connector.MaxMessageField(connector.DefaultMaxMessageBytes, "the largest packet the broker may send, as its remaining length (topic, properties and payload); a larger one closes the session, which the Manager redials"),
}, connector.TLSFields()...)}

// Schema implements connector.Type.
func (Connector) Schema() *connector.Schema { return schema }

// Identity implements connector.Identifier: a clientid on one broker
// belongs to one connection (a random default belongs to none).
func (Connector) Identity(p connector.Props) (string, string) {
	u, err := url.Parse(p.String("server"))
	if err != nil {
		return "", ""
	}
	port := u.Port()
	if port == "" {
		port = mqttdial.DefaultPorts[u.Scheme]
	}
	return connector.MQTTIdentity(u.Hostname(), port, p.String("clientid")), "clientid"
}

// schemes are those of server: the ones paho speaks, but mqtt+ssl.
var schemes = map[string]bool{"tcp": true, "mqtt": true, "ssl": true, "tls": true, "mqtts": true, "tcps": true, "ws": true, "wss": true}

// settings are decoded and checked props.
type settings struct {
	mqttdial.Config
	clientID  string
	buffer    int
	statePath string
}

// defaultPublishBuffer is publishBuffer's default.
const defaultPublishBuffer = 1000

func parse(p connector.Props) (*settings, error) {
	var fe connector.FieldErrors
	s := &settings{clientID: p.String("clientid")}
	s.Username, s.Password = p.String("username"), p.String("password")
	s.CleanSession = !p.Bool("enableClientSession")
	if !s.CleanSession && s.clientID == "" {
		fe = append(fe, connector.FieldError{Field: "clientid", Message: "enableClientSession needs a stable clientid: set one that no other client of the broker uses"})
	}
	s.statePath = p.String("clientStatePath")
	if s.statePath != "" && s.clientID == "" {
		fe = append(fe, connector.FieldError{Field: "clientid", Message: "clientStatePath needs a stable clientid, to find its messages again after a restart: set one"})
	}
	switch b := p.Int("publishBuffer"); {
	case b < 0 || b > 1_000_000:
		fe = append(fe, connector.FieldError{Field: "publishBuffer", Message: "must be from 0 to 1000000 messages"})
	default:
		s.buffer = int(b)
	}
	u, err := url.Parse(p.String("server"))
	switch {
	case err != nil:
		fe = append(fe, connector.FieldError{Field: "server", Message: "not a URL; use tcp://host:1883"})
	case !schemes[u.Scheme]:
		fe = append(fe, connector.FieldError{Field: "server", Message: fmt.Sprintf("scheme %q is not supported; use tcp, ssl, ws or wss, as in tcp://host:1883", u.Scheme)})
	case u.Host == "":
		fe = append(fe, connector.FieldError{Field: "server", Message: "no host; use tcp://host:1883"})
	case connector.BadPort(u.Port()) != "":
		fe = append(fe, connector.FieldError{Field: "server", Message: connector.BadPort(u.Port()) + "; use tcp://host:1883"})
	default:
		s.Server = u
	}
	s.Version = 4
	if p.String("protocolVersion") == "3.1" {
		s.Version = 3
	}
	if ka := p.Int("keepAlive"); ka < 0 {
		fe = append(fe, connector.FieldError{Field: "keepAlive", Message: "must not be negative"})
	} else {
		s.KeepAlive = time.Duration(ka) * time.Second
	}
	max, mfe := connector.MaxMessage(p)
	fe = append(fe, mfe...)
	s.MaxMessage = max
	host := ""
	if s.Server != nil {
		host = s.Server.Hostname()
	}
	tc, tfe := connector.LoadTLS(p, host)
	fe = append(fe, tfe...)
	if u := s.Server; u != nil && (tc != nil || mqttdial.Schemes[u.Scheme]) {
		if tc == nil {
			tc = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tc.ServerName = u.Hostname()
	}
	s.TLS = tc
	if len(fe) > 0 {
		return nil, fe
	}
	return s, nil
}

func randomID(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Open implements connector.Type.
func (Connector) Open(p connector.Props, ev connector.Events) (connector.Conn, error) {
	s, err := parse(p)
	if err != nil {
		return nil, err
	}
	if s.clientID == "" {
		s.clientID = randomID("connkit-")
	}
	c := &conn{s: s, ev: ev, active: connector.ActiveFunc(ev), qos: map[string]byte{}, stale: map[string]bool{}}
	c.q.max = s.buffer
	if !s.CleanSession {
		// A fresh client per dial numbers its packets from 1 again: a
		// persistent session's broker would take a new QoS 2 message
		// under an id it holds half done for a message of the last link
		// as that one, and drop it.
		s.Store = paho.NewMemoryStore()
	}
	if s.statePath != "" {
		root, err := ev.Policy().File(s.statePath)
		if err != nil {
			return nil, connector.FieldErrors{{Field: "clientStatePath", Message: err.Error()}}
		}
		c.q.dir = stateDir(root, s.clientID)
	}
	return c, nil
}

type conn struct {
	s      *settings
	ev     connector.Events
	active func() // connector.Activity of ev: a message was sent or received

	mu     sync.Mutex
	cur    paho.Client         // the connected client, nil while down
	down   chan struct{}       // closed when cur goes down
	subs   fanout.Set[handler] // the attaches' handlers per topic
	qos    map[string]byte     // the QoS of each broker subscription
	stale  map[string]bool     // a persistent session's subscriptions to drop on the next link
	q      queue               // the QoS 1 and 2 publishes owed to the broker
	closed bool

	wg sync.WaitGroup // the publishes followed (send)
}

// drop marks the current link down, under c.mu.
func (c *conn) drop() {
	c.cur, c.q.kick = nil, nil
	if c.down != nil {
		close(c.down)
		c.down = nil
	}
}

var errClosed = errors.New("mqtt: connection closed")

// Connect implements connector.Conn.
func (c *conn) Connect(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	old := c.cur
	c.drop()
	c.mu.Unlock()
	if old != nil {
		old.Disconnect(0)
	}
	if err := c.ready(); err != nil {
		return err
	}
	var cl paho.Client
	cl, err := c.s.Dial(ctx, c.s.clientID, func(lostCl paho.Client, err error) {
		c.mu.Lock()
		current := c.cur == lostCl
		if current {
			c.drop()
		}
		c.mu.Unlock()
		if current {
			c.ev.Lost(err)
		}
	}, c.deliver)
	if err != nil {
		if mqttdial.Reason(err) == connector.ReasonUnauthorized {
			return connector.Permanent(err)
		}
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cl.Disconnect(0)
		return errClosed
	}
	if !cl.IsConnectionOpen() {
		// Lost before it became current: the lost handler ignored it.
		c.mu.Unlock()
		cl.Disconnect(0)
		return errors.New("the link dropped while connecting")
	}
	c.cur, c.down = cl, make(chan struct{})
	restore := make(map[string]byte, len(c.qos))
	for topic, q := range c.qos {
		restore[topic] = q
	}
	var stale []string
	for topic := range c.stale {
		stale = append(stale, topic)
	}
	c.mu.Unlock()
	if len(stale) > 0 {
		// Released while the link was down: the persistent session
		// still has them.
		if err := waitToken(ctx, cl.Unsubscribe(stale...)); err != nil {
			return fmt.Errorf("dropping %d subscriptions of released attaches: %w", len(stale), err)
		}
		c.mu.Lock()
		for _, topic := range stale {
			delete(c.stale, topic)
		}
		c.mu.Unlock()
	}
	if len(restore) > 0 {
		// Routes first, so that no message of the new subscriptions is
		// missed.
		for topic := range restore {
			cl.AddRoute(topic, c.dispatch(topic))
		}
		tok := cl.SubscribeMultiple(restore, nil)
		if err := waitToken(ctx, tok); err != nil {
			return fmt.Errorf("restoring %d subscriptions: %w", len(restore), err)
		}
	}
	// The queue goes out on this link, in order, before what is
	// published from now on.
	c.mu.Lock()
	if c.cur != cl {
		c.mu.Unlock()
		return errors.New("the link dropped while restoring subscriptions")
	}
	kick, down := make(chan struct{}, 1), c.down
	c.q.kick = kick
	c.wg.Add(1)
	c.mu.Unlock()
	go c.pump(cl, down, kick)
	poke(kick)
	return nil
}

func waitToken(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handler is one attach's handler of a topic.
type handler struct {
	v *view
	h paho.MessageHandler
}

// PeerAddr implements connector.Peer: the broker's host:port.
func (c *conn) PeerAddr() string {
	port := c.s.Server.Port()
	if port == "" {
		port = mqttdial.DefaultPorts[c.s.Server.Scheme]
	}
	return net.JoinHostPort(c.s.Server.Hostname(), port)
}

// Client implements connector.Conn; the Manager calls View instead.
func (c *conn) Client(ref string) any { v, _ := c.View(ref); return v }

// View implements connector.Viewer: a paho client view for one attach of
// ref; end drops its subscriptions, and the broker's where no other
// attach holds the topic.
func (c *conn) View(ref string) (any, func()) {
	v := &view{c: c, s: scope.New(ref)}
	return v, func() {
		v.s.End()
		c.mu.Lock()
		topics := c.subs.KeysOf(v.s.Key())
		c.mu.Unlock()
		c.unsubscribe(v.s.Key(), topics...)
	}
}

// Close implements connector.Conn.
func (c *conn) Close() error {
	c.mu.Lock()
	c.closed = true
	cl := c.cur
	c.drop()
	pending := c.q.pending
	c.q.pending, c.q.owed = nil, c.q.owed-len(pending)
	c.mu.Unlock()
	if cl != nil {
		cl.Disconnect(250)
	}
	// Kept on disk, if clientStatePath is set: the next open sends them.
	for _, o := range pending {
		o.tok.complete(ErrClosed)
	}
	c.wg.Wait()
	c.mu.Lock()
	lock := c.q.lock
	c.q.lock = nil
	c.mu.Unlock()
	if lock != nil {
		lock.Close() // and with it the flock
	}
	return nil
}

// deliver takes the messages no route takes: those a persistent
// session's broker sends before Connect has added the routes, for the
// subscriptions it kept. Each goes to the handlers of every filter of
// ours it matches.
func (c *conn) deliver(_ paho.Client, msg paho.Message) {
	c.active()
	var hs []handler
	c.mu.Lock()
	for topic := range c.qos {
		if match(topic, msg.Topic()) {
			for _, e := range c.subs.Of(topic) {
				hs = append(hs, e.V)
			}
		}
	}
	c.mu.Unlock()
	for _, h := range hs {
		if !h.v.s.Ended() {
			h.h(h.v, msg)
		}
	}
}

// match reports whether topic matches filter, with its + and #
// wildcards; a topic that starts with $ is matched by no wildcard in
// the first level (MQTT 3.1.1, 4.7.2).
func match(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		t, trest, tmore := strings.Cut(topic, "/")
		switch {
		case f == "#":
			return true
		case f != "+" && f != t:
			return false
		case !fmore && !tmore:
			return true
		case !fmore:
			return false
		case !tmore:
			return frest == "#"
		}
		filter, topic = frest, trest
	}
}

// dispatch delivers a message of topic's subscription to every ref on it.
func (c *conn) dispatch(topic string) paho.MessageHandler {
	return func(_ paho.Client, msg paho.Message) {
		c.active()
		c.mu.Lock()
		hs := c.subs.Of(topic)
		c.mu.Unlock()
		for _, e := range hs {
			if !e.V.v.s.Ended() {
				e.V.h(e.V.v, msg)
			}
		}
	}
}

func (c *conn) subscribe(v *view, topic string, qos byte, h paho.MessageHandler) paho.Token {
	if h == nil {
		return doneToken(errors.New("mqtt: Subscribe needs a handler: the view has no default one"))
	}
	c.mu.Lock()
	if v.s.Ended() {
		// Checked under the lock that end takes: nothing is added after
		// end has dropped the view's subscriptions.
		c.mu.Unlock()
		return doneToken(v.s.Err("mqtt"))
	}
	need := c.subs.Add(topic, v.s.Key(), handler{v, h})
	delete(c.stale, topic)
	if q, ok := c.qos[topic]; !ok || qos > q {
		c.qos[topic], need = qos, true
	}
	q := c.qos[topic]
	cl := c.cur
	c.mu.Unlock()
	if !need || cl == nil {
		// Held already, or made on the next connect.
		return doneToken(nil)
	}
	return cl.Subscribe(topic, q, c.dispatch(topic))
}

func (c *conn) unsubscribe(key string, topics ...string) paho.Token {
	c.mu.Lock()
	gone := c.subs.Remove(key, topics...)
	for _, topic := range gone {
		delete(c.qos, topic)
	}
	cl := c.cur
	if cl == nil && !c.s.CleanSession {
		for _, topic := range gone {
			c.stale[topic] = true
		}
	}
	c.mu.Unlock()
	if len(gone) == 0 || cl == nil {
		return doneToken(nil)
	}
	return cl.Unsubscribe(gone...)
}

// Attach attaches ref to the connection id of a (such as a
// *connection.Manager) and returns its paho client view. A connection of
// another type is refused before anything is recorded. Release it with
// Detach(id, ref).
func Attach(ctx context.Context, a connector.Attacher, id, ref string) (paho.Client, error) {
	return Client(connector.AttachAs[*view](ctx, a, id, ref))
}

// Client returns the paho client view that Attach of a Manager handed
// out, for use as
//
//	c, err := mqtt.Client(m.Attach(ctx, id, ref))
//
// On a connection of another type it fails and the ref stays attached:
// prefer Attach, which checks first.
func Client(client any, err error) (paho.Client, error) {
	v, err := connector.As[*view](client, err)
	if err != nil {
		return nil, err
	}
	return v, nil
}
