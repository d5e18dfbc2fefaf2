package mqtt

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/scope"
)

// view is the paho.Client one attach gets: the shared session, with its
// subscriptions counted per topic, until the attach is released.
type view struct {
	c *conn
	s *scope.Scope
}

var _ paho.Client = (*view)(nil)

// ErrNotConnected is the error of a Publish while the session is down and
// the Manager redials it.
var ErrNotConnected = errors.New("mqtt: not connected; the Manager is redialing")

// ErrClosed is the error of an operation on a view whose connection was
// closed: updated, deleted, or its Manager closed.
var ErrClosed = errors.New("mqtt: the connection was closed; attach again")

// link returns the connected client, or why there is none.
func (v *view) link() (paho.Client, error) {
	if err := v.s.Err("mqtt"); err != nil {
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

func (v *view) IsConnected() bool {
	cl, err := v.link()
	return err == nil && cl.IsConnected()
}

func (v *view) IsConnectionOpen() bool {
	cl, err := v.link()
	return err == nil && cl.IsConnectionOpen()
}

// Connect does nothing, the Manager owns the session; once the attach is
// released it fails with ErrDetached.
func (v *view) Connect() paho.Token { return doneToken(v.s.Err("mqtt")) }

// Disconnect does nothing: detach the ref from the Manager instead.
func (v *view) Disconnect(uint) {}

// Publish sends a message. At QoS 1 and 2 it is queued while the link is
// down (up to publishBuffer messages, then it fails at once with
// ErrBufferFull) and sent on the next link; its token completes when the
// broker acknowledged it, or with an error when it never will (the
// connection closed). A message whose link drops before the broker's
// acknowledgement is sent again on the next link: at QoS 1 and 2 the
// broker may get it twice. QoS 0 is never queued: while the link is down
// it fails at once with ErrNotConnected.
func (v *view) Publish(topic string, qos byte, retained bool, payload any) paho.Token {
	if qos > 2 {
		return doneToken(fmt.Errorf("mqtt: QoS %d; use 0, 1 or 2", qos))
	}
	if err := publishTopic(topic); err != nil {
		// A broker drops the link of a client that publishes to such a
		// topic: refused here, it can never poison the queue.
		return doneToken(err)
	}
	if qos == 0 {
		cl, err := v.link()
		if err != nil {
			return doneToken(err)
		}
		v.c.active()
		return cl.Publish(topic, qos, retained, payload)
	}
	if err := v.s.Err("mqtt"); err != nil {
		return doneToken(err)
	}
	b, err := payloadBytes(payload)
	if err != nil {
		return doneToken(err)
	}
	return v.c.publish(topic, qos, retained, b)
}

// Subscribe adds this attach's handler to topic. The broker is asked only
// for the first attach on a topic (or a higher QoS); while the session is
// down, the subscription is made when it comes back.
func (v *view) Subscribe(topic string, qos byte, h paho.MessageHandler) paho.Token {
	if _, err := v.link(); errors.Is(err, ErrClosed) || errors.Is(err, connector.ErrDetached) {
		return doneToken(err)
	}
	return v.c.subscribe(v, topic, qos, h)
}

func (v *view) SubscribeMultiple(filters map[string]byte, h paho.MessageHandler) paho.Token {
	if _, err := v.link(); errors.Is(err, ErrClosed) || errors.Is(err, connector.ErrDetached) {
		return doneToken(err)
	}
	toks := make([]paho.Token, 0, len(filters))
	for topic, qos := range filters {
		toks = append(toks, v.c.subscribe(v, topic, qos, h))
	}
	return allTokens(toks)
}

// Unsubscribe drops this attach's handlers of topics; the broker
// subscription goes when no attach holds it.
func (v *view) Unsubscribe(topics ...string) paho.Token {
	if err := v.s.Err("mqtt"); err != nil {
		return doneToken(err)
	}
	return v.c.unsubscribe(v.s.Key(), topics...)
}

// AddRoute adds a handler on the current session only; it is not restored
// after a reconnect. Prefer Subscribe.
func (v *view) AddRoute(topic string, h paho.MessageHandler) {
	if cl, err := v.link(); err == nil {
		cl.AddRoute(topic, func(_ paho.Client, msg paho.Message) {
			v.c.active()
			if !v.s.Ended() {
				h(v, msg)
			}
		})
	}
}

func (v *view) OptionsReader() paho.ClientOptionsReader {
	o := paho.NewClientOptions()
	o.AddBroker(v.c.s.Server.String())
	o.SetClientID(v.c.s.clientID)
	o.SetUsername(v.c.s.Username)
	o.SetProtocolVersion(v.c.s.Version)
	o.SetKeepAlive(v.c.s.KeepAlive)
	return paho.NewOptionsReader(o)
}

// publishTopic says what makes topic one no broker accepts a publish to
// (MQTT 3.1.1, 4.7), or nil.
func publishTopic(topic string) error {
	switch {
	case topic == "":
		return errors.New("mqtt: an empty topic; name one")
	case len(topic) > 65535:
		return fmt.Errorf("mqtt: a topic of %d bytes; MQTT allows 65535", len(topic))
	case strings.ContainsAny(topic, "+#"):
		return fmt.Errorf("mqtt: topic %q has a wildcard (+ or #), which only a subscription may have", connector.Truncate(topic, 64))
	case strings.ContainsRune(topic, 0) || !utf8.ValidString(topic):
		return errors.New("mqtt: a topic with a NUL or that is not UTF-8")
	}
	return nil
}

// token is a paho.Token that is already done, or done when others are.
type token struct {
	done chan struct{}
	err  error
}

func doneToken(err error) paho.Token {
	t := &token{done: make(chan struct{}), err: err}
	close(t.done)
	return t
}

func newToken() *token { return &token{done: make(chan struct{})} }

// complete ends t with err; once.
func (t *token) complete(err error) {
	t.err = err
	close(t.done)
}

func allTokens(toks []paho.Token) paho.Token {
	t := &token{done: make(chan struct{})}
	go func() {
		defer close(t.done)
		for _, x := range toks {
			<-x.Done()
			if err := x.Error(); err != nil && t.err == nil {
				t.err = err
			}
		}
	}()
	return t
}

func (t *token) Wait() bool { <-t.done; return true }

func (t *token) WaitTimeout(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.done:
		return true
	case <-timer.C:
		return false
	}
}

func (t *token) Done() <-chan struct{} { return t.done }

func (t *token) Error() error {
	select {
	case <-t.done:
		return t.err
	default:
		return nil
	}
}
