// Package edgex is the connection type "edgex": an EdgeX message bus client
// (github.com/edgexfoundry/go-mod-messaging/v3), shared by every rule
// attached to it.
//
// Props:
//
//	protocol         the broker URL's scheme: tcp (default), ssl, ws, ...
//	server           broker host (required)
//	port             broker port; default 1883
//	type             mqtt (default); nats-core and nats-jetstream need the
//	                 build tag include_nats_messaging, as go-mod-messaging
//	                 compiles NATS only then
//	optional         ClientId, Username, Password (secret), Qos, KeepAlive,
//	                 Retained, CleanSession, CertFile, KeyFile, CaFile,
//	                 SkipCertVerify
//	maxMessageBytes  type mqtt: the largest packet the broker may send (its
//	                 remaining length); default 1 MiB
//
// Props are never modified (eKuiper deletes optional from the stored map).
//
//	c, err := edgex.ClientOf(m.Attach(ctx, "bus", "rule1/source"))
//	err = c.Subscribe([]types.TopicChannel{{Topic: "edgex/events/#", Messages: ch}}, errs)
//
// The client is a messaging.MessageClient view for one attach:
// subscriptions are counted per topic (go-mod-messaging keeps one handler
// per topic, so two rules on one topic would take each other's messages),
// and restored when the Manager dials again. Connect and Disconnect of the
// view do nothing. Once the attach is released, every operation fails with
// an error that matches connector.ErrDetached and its channels receive
// nothing more. Attach checks the type before anything is recorded:
//
//	c, err := edgex.Attach(ctx, m, "bus", "rule1/source")
//
// For type mqtt the message client is connkit's own, with the wire format
// of go-mod-messaging's (JSON message envelopes, Qos and Retained from
// optional, its Request), over a paho client dialed as the mqtt type's
// are: go-mod-messaging's dials by itself, with no hook, so it would
// resolve the broker's name again and reach what the dial policy refused.
// So every socket comes from the policy's dialer, no broker can make a dial
// read more than connector.HandshakeBudget before its CONNACK, a packet
// over maxMessageBytes closes the session (status says why), and a dial is
// cancelled by closing its socket when its context ends. A lost session is
// reported at once; the health check also asks the broker's address, as
// KeepAlive defaults to none. The Manager redials with a fresh client.
//
// nats-core and nats-jetstream use go-mod-messaging's client, which dials
// on its own: they are refused, at Create and in checks, under a dial
// policy that restricts or observes anything.
package edgex

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/edgexfoundry/go-mod-messaging/v3/messaging"
	"github.com/edgexfoundry/go-mod-messaging/v3/pkg/types"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/fanout"
	"github.com/connkit/connkit/connector/internal/mqttdial"
	"github.com/connkit/connkit/connector/scope"
	"github.com/connkit/connkit/registry"
)

// Type is the name this connection type registers under.
const Type = "edgex"

func init() { registry.Register(Type, Connector{}) }

// Connector is the edgex connector.Type.
type Connector struct{}

var optionalKeys = []string{"CaFile", "CertFile", "CleanSession", "ClientId", "KeepAlive", "KeyFile", "Password", "Qos", "Retained", "SkipCertVerify", "Username"}

var schema = &connector.Schema{Fields: []connector.Field{
	{Name: "protocol", Kind: connector.String, Default: "tcp", Endpoint: true, Doc: "the broker URL's scheme: for mqtt, tcp, ssl, tls, mqtts, mqtt+ssl, tcps, ws or wss"},
	{Name: "server", Kind: connector.String, Required: true, Endpoint: true, Doc: "broker host"},
	{Name: "port", Kind: connector.Int, Default: 1883, Endpoint: true, Doc: "broker port"},
	{Name: "type", Kind: connector.String, Default: "mqtt", Allowed: []any{"mqtt", "nats-core", "nats-jetstream"}, Endpoint: true, Doc: "message bus type"},
	{Name: "optional", Kind: connector.Map, SecretKeys: []string{"Password"},
		EndpointKeys: []string{"Username", "CaFile", "SkipCertVerify"}, Doc: "client options: " + strings.Join(optionalKeys, ", ")},
	connector.MaxMessageField(connector.DefaultMaxMessageBytes, "type mqtt: the largest packet the broker may send, as its remaining length; a larger one closes the session, which the Manager redials"),
}}

// Schema implements connector.Type.
func (Connector) Schema() *connector.Schema { return schema }

// Identity implements connector.Identifier: an MQTT bus's ClientId on one
// broker belongs to one connection, of this type or of mqtt.
func (Connector) Identity(p connector.Props) (string, string) {
	if p.String("type") != "mqtt" {
		return "", ""
	}
	id, _ := p.Map("optional")["ClientId"].(string)
	return connector.MQTTIdentity(p.String("server"), strconv.FormatInt(p.Int("port"), 10), id), "optional"
}

type settings struct {
	cfg      types.MessageBusConfig // Optional without ClientId and timeouts
	clientID string
	tls      tlsFiles
	// Type mqtt: the dial, and the QoS and retain flag of publishes.
	mqtt     mqttdial.Config
	qos      byte
	retained bool
}

func parse(p connector.Props) (*settings, error) {
	var fe connector.FieldErrors
	typ := p.String("type")
	if strings.HasPrefix(typ, "nats") && !natsCompiled {
		fe = append(fe, connector.FieldError{Field: "type", Message: typ + " needs connkit built with -tags include_nats_messaging; this build has mqtt only"})
	}
	if !scheme.MatchString(p.String("protocol")) {
		fe = append(fe, connector.FieldError{Field: "protocol", Message: "want a URL scheme only, such as tcp or ssl"})
	}
	port := p.Int("port")
	if port <= 0 || port > math.MaxUint16 {
		fe = append(fe, connector.FieldError{Field: "port", Message: "want 1 to 65535"})
	}
	if strings.ContainsAny(p.String("server"), "/:@") {
		fe = append(fe, connector.FieldError{Field: "server", Message: "want a host name or address only; put the port in port and the scheme in protocol"})
	}
	opt := map[string]string{}
	unknown := 0
	for k, v := range p.Map("optional") {
		if !slices.Contains(optionalKeys, k) {
			if unknown++; unknown <= connector.MaxFieldErrors {
				fe = append(fe, connector.FieldError{Field: "optional", Message: fmt.Sprintf("unknown key %q; the keys are %s", connector.Short(k), strings.Join(optionalKeys, ", "))})
			}
			continue
		}
		switch x := v.(type) {
		case string:
			opt[k] = x
		case bool:
			opt[k] = strconv.FormatBool(x)
		default:
			if n, ok := asNumber(v); ok {
				opt[k] = strconv.FormatFloat(n, 'f', -1, 64)
			} else {
				fe = append(fe, connector.FieldError{Field: "optional", Message: fmt.Sprintf("%s: want a string, number or bool", k)})
			}
		}
	}
	if q, ok := opt["Qos"]; ok {
		if n, err := strconv.Atoi(q); err != nil || n < 0 || n > 2 {
			fe = append(fe, connector.FieldError{Field: "optional", Message: "Qos: want 0, 1 or 2"})
		}
	}
	for _, k := range []string{"Retained", "SkipCertVerify", "CleanSession"} {
		if v, ok := opt[k]; ok {
			if _, err := strconv.ParseBool(v); err != nil {
				fe = append(fe, connector.FieldError{Field: "optional", Message: k + ": want true or false"})
			}
		}
	}
	if v, ok := opt["KeepAlive"]; ok {
		if n, err := strconv.Atoi(v); err != nil || n < 0 {
			fe = append(fe, connector.FieldError{Field: "optional", Message: "KeepAlive: want whole seconds"})
		}
	}
	files, tfe := loadTLS(opt)
	fe = append(fe, tfe...)
	max, mfe := connector.MaxMessage(p)
	fe = append(fe, mfe...)
	if _, ok := mqttdial.Schemes[p.String("protocol")]; typ == "mqtt" && !ok && scheme.MatchString(p.String("protocol")) {
		fe = append(fe, connector.FieldError{Field: "protocol", Message: fmt.Sprintf("%q is not one MQTT is spoken over; use tcp, ssl, tls, mqtts, mqtt+ssl, tcps, ws or wss", p.String("protocol"))})
	}
	if len(fe) > 0 {
		sort.SliceStable(fe, func(i, j int) bool { return fe[i].Field < fe[j].Field })
		return nil, fe
	}
	s := &settings{clientID: opt["ClientId"], tls: files}
	delete(opt, "ClientId")
	if typ == "mqtt" {
		s.mqttConfig(p, opt, max)
		files.optional(opt)
	}
	s.cfg = types.MessageBusConfig{
		Broker:   types.HostInfo{Host: p.String("server"), Port: int(port), Protocol: p.String("protocol")},
		Type:     typ,
		Optional: opt,
	}
	return s, nil
}

// scheme is what protocol may be: the scheme of the broker's URL, and
// nothing that would carry a host or user info.
var scheme = regexp.MustCompile(`^[a-z][a-z0-9+.-]{0,15}$`)

func asNumber(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case interface{ Float64() (float64, error) }:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func randomID(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// mqttConfig sets the dial of an MQTT bus from props and optional, as
// go-mod-messaging reads them (KeepAlive none, CleanSession true, Qos 0),
// with MQTT 3.1.1 pinned.
func (s *settings) mqttConfig(p connector.Props, opt map[string]string, max int64) {
	host, protocol := p.String("server"), p.String("protocol")
	keep, _ := strconv.Atoi(opt["KeepAlive"])
	qos, _ := strconv.Atoi(opt["Qos"])
	clean := true
	if v, ok := opt["CleanSession"]; ok {
		clean, _ = strconv.ParseBool(v)
	}
	s.qos = byte(qos)
	s.retained, _ = strconv.ParseBool(opt["Retained"])
	s.mqtt = mqttdial.Config{
		Server:  &url.URL{Scheme: protocol, Host: net.JoinHostPort(host, strconv.FormatInt(p.Int("port"), 10))},
		Version: 4, Username: opt["Username"], Password: opt["Password"],
		KeepAlive: time.Duration(keep) * time.Second, CleanSession: clean,
		TLS: s.tls.config(protocol, host), MaxMessage: max,
	}
}

// config returns the bus config of a NATS client, under ctx's deadline.
func (s *settings) config(ctx context.Context, clientID string) types.MessageBusConfig {
	cfg := s.cfg
	cfg.Optional = make(map[string]string, len(s.cfg.Optional)+3)
	for k, v := range s.cfg.Optional {
		cfg.Optional[k] = v
	}
	cfg.Optional["ClientId"] = clientID
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	cfg.Optional["ConnectTimeout"] = strconv.Itoa(max(1, int(math.Ceil(timeout.Seconds()))))
	return cfg
}

// connect makes and connects a client under ctx; lost, if set, hears of
// the loss of an MQTT session. go-mod-messaging's Connect (NATS) cannot be
// cancelled: it runs in a goroutine that wg counts, and ends by the
// connect timeout at the latest.
func (s *settings) connect(ctx context.Context, clientID string, wg *sync.WaitGroup, lost paho.ConnectionLostHandler) (messaging.MessageClient, error) {
	if s.cfg.Type == "mqtt" {
		timeout := 10 * time.Second
		if d, ok := ctx.Deadline(); ok {
			timeout = max(time.Second, time.Until(d))
		}
		cl, err := s.mqtt.Dial(ctx, clientID, lost, nil)
		connector.StepNext(ctx, "handshake", err)
		if err != nil {
			return nil, connector.CheckFailed(mqttdial.Reason(err), err)
		}
		return newMQTTClient(cl, s.qos, s.retained, timeout), nil
	}
	cl, err := messaging.NewMessageClient(s.config(ctx, clientID))
	if err != nil {
		return nil, connector.FieldErrors{{Field: "type", Message: err.Error()}}
	}
	done := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		done <- cl.Connect()
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		go func() {
			// Disconnect once the attempt has ended, whatever it was.
			if <-done == nil {
				cl.Disconnect()
			}
		}()
		return nil, connector.CheckFailed(connector.ReasonTimeout, fmt.Errorf("connect to %s: %w", s.cfg.Broker.GetHostURL(), ctx.Err()))
	}
	if err != nil {
		return nil, connector.CheckFailed(reason(err), fmt.Errorf("connect to %s: %w", s.cfg.Broker.GetHostURL(), err))
	}
	return cl, nil
}

// reason reads the error's text: go-mod-messaging does not wrap causes.
func reason(err error) string {
	msg := strings.ToLower(err.Error())
	switch {
	case strings.Contains(msg, "not authorized"), strings.Contains(msg, "bad user name or password"):
		return connector.ReasonUnauthorized
	case strings.Contains(msg, "connection refused"):
		return connector.ReasonRefused
	case strings.Contains(msg, "timeout"), strings.Contains(msg, "timed out"):
		return connector.ReasonTimeout
	}
	return connector.ReasonUnreachable
}

// selfDialed says why a bus whose client dials on its own (NATS) cannot be
// held to the dial policy p, or "" if p asks nothing of a dial.
func (s *settings) selfDialed(p *connector.DialPolicy) string {
	if s.cfg.Type == "mqtt" || p == nil {
		return ""
	}
	if len(p.Allow) == 0 && len(p.Deny) == 0 && len(p.Ports) == 0 && !p.DenyLoopback && !p.DenyLinkLocal && !p.DenyPrivate && p.Observe == nil {
		return ""
	}
	return "a " + s.cfg.Type + " bus cannot be held to the dial policy: go-mod-messaging's client dials on its own; use type mqtt, or a Manager without a dial policy"
}

// Open implements connector.Type.
func (Connector) Open(p connector.Props, ev connector.Events) (connector.Conn, error) {
	s, err := parse(p)
	if err != nil {
		return nil, err
	}
	var dp *connector.DialPolicy
	if p := ev.Policy(); p != nil {
		dp = p.Dial
	}
	if why := s.selfDialed(dp); why != "" {
		return nil, connector.FieldErrors{{Field: "type", Message: why}}
	}
	if s.clientID == "" {
		s.clientID = randomID("connkit-edgex-")
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{s: s, ev: ev, active: connector.ActiveFunc(ev), ctx: ctx, cancel: cancel, topics: map[string]*topic{}, errs: make(chan error, 16)}
	c.wg.Add(1)
	go c.forwardErrors()
	return c, nil
}

type conn struct {
	s  *settings
	ev connector.Events
	// active is connector.Activity of the Events: a message was
	// published or received.
	active func()
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // connect attempts and forwarders
	errs   chan error     // errors of every subscription

	mu     sync.Mutex
	cur    messaging.MessageClient
	topics map[string]*topic // the bus side of each subscription
	subs   fanout.Set[sub]   // the refs on each topic
	closed bool
}

// topic is one subscription on the bus.
type topic struct {
	in   chan types.MessageEnvelope // what the library delivers
	stop chan struct{}              // closed when no ref holds the topic
}

// sub is where one attach takes a topic's messages.
type sub struct {
	s    *scope.Scope
	out  chan<- types.MessageEnvelope
	errs chan error
}

// Connect implements connector.Conn.
func (c *conn) Connect(ctx context.Context) error {
	cl, err := c.s.connect(ctx, c.s.clientID, &c.wg, func(lostCl paho.Client, err error) {
		c.mu.Lock()
		mc, _ := c.cur.(*mqttClient)
		current := mc != nil && mc.cl == lostCl
		if current {
			c.cur = nil
		}
		c.mu.Unlock()
		if current {
			mc.Disconnect()
			c.ev.Lost(err)
		}
	})
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
		cl.Disconnect()
		return errors.New("edgex: connection closed")
	}
	old := c.cur
	c.cur = cl
	if mc, ok := cl.(*mqttClient); ok && !mc.cl.IsConnectionOpen() {
		// Lost before it became current: the lost handler ignored it.
		c.cur = nil
		c.mu.Unlock()
		cl.Disconnect()
		if old != nil {
			old.Disconnect()
		}
		return errors.New("edgex: the link dropped while connecting")
	}
	var restore []types.TopicChannel
	for name, t := range c.topics {
		restore = append(restore, types.TopicChannel{Topic: name, Messages: t.in})
	}
	c.mu.Unlock()
	if old != nil {
		old.Disconnect()
	}
	if len(restore) > 0 {
		if err := cl.Subscribe(restore, c.errs); err != nil {
			return fmt.Errorf("restoring %d subscriptions: %w", len(restore), err)
		}
	}
	return nil
}

// Ping implements connector.Pinger: the MQTT session is up, and the
// broker's address answers (KeepAlive defaults to none, so a silent
// network would go unnoticed; nor does a NATS client report a loss).
func (c *conn) Ping(ctx context.Context) error {
	c.mu.Lock()
	cl := c.cur
	c.mu.Unlock()
	if cl == nil {
		return ErrNotConnected
	}
	if mc, ok := cl.(*mqttClient); ok && !mc.cl.IsConnectionOpen() {
		return errDown
	}
	b := c.s.cfg.Broker
	nc, err := connector.Dialer(ctx).DialContext(ctx, "tcp", net.JoinHostPort(b.Host, strconv.Itoa(b.Port)))
	if err != nil {
		return err
	}
	return nc.Close()
}

// PeerAddr implements connector.Peer: the broker's host:port.
func (c *conn) PeerAddr() string {
	b := c.s.cfg.Broker
	return net.JoinHostPort(b.Host, strconv.Itoa(b.Port))
}

// Client implements connector.Conn; the Manager calls View instead.
func (c *conn) Client(ref string) any { v, _ := c.View(ref); return v }

// View implements connector.Viewer: a message client view for one attach
// of ref; end drops its subscriptions.
func (c *conn) View(ref string) (any, func()) {
	v := &view{c: c, s: scope.New(ref)}
	return v, func() {
		v.s.End()
		c.mu.Lock()
		names := c.subs.KeysOf(v.s.Key())
		c.mu.Unlock()
		c.unsubscribe(v.s.Key(), names...)
	}
}

func (c *conn) Close() error {
	c.mu.Lock()
	c.closed = true
	cl := c.cur
	c.cur = nil
	c.mu.Unlock()
	if cl != nil {
		cl.Disconnect()
	}
	c.cancel()
	c.wg.Wait()
	return nil
}

// forward delivers what the bus sends on topic name to each ref.
func (c *conn) forward(name string, t *topic) {
	defer c.wg.Done()
	for {
		select {
		case env := <-t.in:
			c.active()
			c.mu.Lock()
			subs := c.subs.Of(name)
			c.mu.Unlock()
			for _, s := range subs {
				scope.Send(s.V.s, s.V.out, env, t.stop, c.ctx.Done())
			}
			select {
			case <-t.stop:
				return
			case <-c.ctx.Done():
				return
			default:
			}
		case <-t.stop:
			return
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *conn) forwardErrors() {
	defer c.wg.Done()
	for {
		select {
		case err := <-c.errs:
			c.mu.Lock()
			var outs []chan error
			for _, name := range c.subs.Keys() {
				for _, s := range c.subs.Of(name) {
					if s.V.errs != nil && !s.V.s.Ended() && !slices.Contains(outs, s.V.errs) {
						outs = append(outs, s.V.errs)
					}
				}
			}
			c.mu.Unlock()
			for _, o := range outs {
				select {
				case o <- err:
				default: // a ref that does not read its errors misses them
				}
			}
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *conn) subscribe(v *view, tcs []types.TopicChannel, errs chan error) error {
	var fresh []types.TopicChannel
	c.mu.Lock()
	if err := v.s.Err("edgex"); err != nil {
		// Checked under the lock that end takes: nothing is added after
		// end has dropped the view's subscriptions.
		c.mu.Unlock()
		return err
	}
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	for _, tc := range tcs {
		if c.subs.Add(tc.Topic, v.s.Key(), sub{s: v.s, out: tc.Messages, errs: errs}) {
			t := &topic{in: make(chan types.MessageEnvelope, 64), stop: make(chan struct{})}
			c.topics[tc.Topic] = t
			c.wg.Add(1)
			go c.forward(tc.Topic, t)
			fresh = append(fresh, types.TopicChannel{Topic: tc.Topic, Messages: t.in})
		}
	}
	cl := c.cur
	c.mu.Unlock()
	if cl == nil || len(fresh) == 0 {
		return nil // held already, or made on the next connect
	}
	return cl.Subscribe(fresh, c.errs)
}

func (c *conn) unsubscribe(key string, names ...string) error {
	c.mu.Lock()
	gone := c.subs.Remove(key, names...)
	for _, name := range gone {
		close(c.topics[name].stop)
		delete(c.topics, name)
	}
	cl := c.cur
	c.mu.Unlock()
	if cl == nil || len(gone) == 0 {
		return nil
	}
	return cl.Unsubscribe(gone...)
}

// ErrNotConnected is the error of a Publish while the bus is down and the
// Manager redials it.
var ErrNotConnected = errors.New("edgex: not connected; the Manager is redialing")

// ErrClosed is the error of an operation on a view whose connection was
// closed: updated, deleted, or its Manager closed.
var ErrClosed = errors.New("edgex: the connection was closed; attach again")

// view is the messaging.MessageClient one attach gets.
type view struct {
	c *conn
	s *scope.Scope
}

// link returns the connected client, or why there is none.
func (v *view) link() (messaging.MessageClient, error) {
	if err := v.s.Err("edgex"); err != nil {
		return nil, err
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	switch {
	case v.c.closed:
		return nil, ErrClosed
	case v.c.cur == nil:
		return nil, ErrNotConnected
	}
	return v.c.cur, nil
}

var _ messaging.MessageClient = (*view)(nil)

// Connect does nothing, the Manager owns the client; once the attach is
// released it fails with ErrDetached.
func (v *view) Connect() error { return v.s.Err("edgex") }

// Disconnect does nothing, detach the ref from the Manager instead; once
// the attach is released it fails with ErrDetached.
func (v *view) Disconnect() error { return v.s.Err("edgex") }

func (v *view) Publish(msg types.MessageEnvelope, topic string) error {
	cl, err := v.link()
	if err != nil {
		return err
	}
	if err := cl.Publish(msg, topic); err != nil {
		return err
	}
	v.c.active()
	return nil
}

// Subscribe delivers the bus's messages on each topic to its channel. The
// channels must be read: a full one holds up the other attaches on its
// topic.
func (v *view) Subscribe(topics []types.TopicChannel, messageErrors chan error) error {
	return v.c.subscribe(v, topics, messageErrors)
}

func (v *view) Unsubscribe(topics ...string) error {
	if err := v.s.Err("edgex"); err != nil {
		return err
	}
	return v.c.unsubscribe(v.s.Key(), topics...)
}

func (v *view) Request(msg types.MessageEnvelope, requestTopic, responseTopicPrefix string, timeout time.Duration) (*types.MessageEnvelope, error) {
	cl, err := v.link()
	if err != nil {
		return nil, err
	}
	res, err := cl.Request(msg, requestTopic, responseTopicPrefix, timeout)
	if err == nil {
		v.c.active()
	}
	return res, err
}

// CheckSource implements connector.SourceChecker: a client with its own id
// connects to the bus and disconnects.
func (Connector) CheckSource(ctx context.Context, raw map[string]any) error {
	return checkProps(ctx, raw)
}

// CheckSink implements connector.SinkChecker, as CheckSource.
func (Connector) CheckSink(ctx context.Context, raw map[string]any) error {
	return checkProps(ctx, raw)
}

func checkProps(ctx context.Context, raw map[string]any) error {
	p, _, err := schema.DecodeCheck(raw, nil)
	if err != nil {
		return err
	}
	s, err := parse(p)
	if err != nil {
		return err
	}
	return s.check(ctx)
}

// check connects a client of its own to the bus and leaves.
func (s *settings) check(ctx context.Context) error {
	id := randomID("connkit-probe-")
	if s.clientID != "" {
		id = randomID(s.clientID + "-probe-")
	}
	if why := s.selfDialed(connector.DialPolicyFrom(ctx)); why != "" {
		return fmt.Errorf("%w: %s", connector.ErrNotCheckable, why)
	}
	var wg sync.WaitGroup
	cl, err := s.connect(ctx, id, &wg, nil)
	if err != nil {
		return err
	}
	return cl.Disconnect()
}

// Attach attaches ref to the connection id of a (such as a
// *connection.Manager) and returns its message client view. A connection
// of another type is refused before anything is recorded. Release it with
// Detach(id, ref).
func Attach(ctx context.Context, a connector.Attacher, id, ref string) (messaging.MessageClient, error) {
	return ClientOf(connector.AttachAs[*view](ctx, a, id, ref))
}

// ClientOf returns the message client that Attach of a Manager handed
// out, for use as
//
//	c, err := edgex.ClientOf(m.Attach(ctx, id, ref))
//
// On a connection of another type it fails and the ref stays attached:
// prefer Attach, which checks first.
func ClientOf(client any, err error) (messaging.MessageClient, error) {
	v, err := connector.As[*view](client, err)
	if err != nil {
		return nil, err
	}
	return v, nil
}
