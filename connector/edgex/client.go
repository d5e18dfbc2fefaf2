package edgex

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/edgexfoundry/go-mod-messaging/v3/messaging"
	"github.com/edgexfoundry/go-mod-messaging/v3/pkg/types"
)

// mqttClient is the message client of an MQTT bus: go-mod-messaging's
// wire format (a JSON MessageEnvelope per message, ReceivedTopic set on
// receipt, Qos and Retained from optional, its Request), over a paho
// client that connkit dialed itself (package mqttdial). go-mod-messaging's
// own builds its paho options inside an internal package, with no dialer
// hook: it would resolve and dial the broker again by itself, around the
// dial policy.
type mqttClient struct {
	cl       paho.Client
	qos      byte
	retained bool
	timeout  time.Duration // of each operation

	mu     sync.Mutex
	stops  map[string]chan struct{} // closed when its topic is unsubscribed
	closed chan struct{}
}

var _ messaging.MessageClient = (*mqttClient)(nil)

func newMQTTClient(cl paho.Client, qos byte, retained bool, timeout time.Duration) *mqttClient {
	return &mqttClient{cl: cl, qos: qos, retained: retained, timeout: timeout, stops: map[string]chan struct{}{}, closed: make(chan struct{})}
}

// errDown is the error of an operation while the session is down.
var errDown = errors.New("edgex: the MQTT session is down; the Manager redials")

// Connect does nothing: the client is connected when it is made.
func (m *mqttClient) Connect() error {
	if !m.cl.IsConnectionOpen() {
		return errDown
	}
	return nil
}

func (m *mqttClient) wait(tok paho.Token, what string) error {
	if !tok.WaitTimeout(m.timeout) {
		return fmt.Errorf("edgex: %s timed out after %v", what, m.timeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("edgex: %s: %w", what, err)
	}
	return nil
}

func (m *mqttClient) Publish(msg types.MessageEnvelope, topic string) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("edgex: publish: %w", err)
	}
	return m.wait(m.cl.Publish(topic, m.qos, m.retained, b), "publish")
}

// Subscribe delivers each topic's messages to its channel. A handler waits
// for a full channel until the topic is unsubscribed or the client
// disconnected, never longer.
func (m *mqttClient) Subscribe(topics []types.TopicChannel, messageErrors chan error) error {
	for _, tc := range topics {
		stop := make(chan struct{})
		m.mu.Lock()
		if old, ok := m.stops[tc.Topic]; ok {
			close(old) // one handler per topic, as go-mod-messaging's
		}
		m.stops[tc.Topic] = stop
		m.mu.Unlock()
		if err := m.wait(m.cl.Subscribe(tc.Topic, m.qos, m.handler(tc.Messages, messageErrors, stop)), "subscribe to "+tc.Topic); err != nil {
			return err
		}
	}
	return nil
}

func (m *mqttClient) handler(out chan<- types.MessageEnvelope, errs chan<- error, stop <-chan struct{}) paho.MessageHandler {
	return func(_ paho.Client, msg paho.Message) {
		var env types.MessageEnvelope
		if err := json.Unmarshal(msg.Payload(), &env); err != nil {
			if errs != nil {
				select {
				case errs <- fmt.Errorf("edgex: a message on %s is not a message envelope: %w", msg.Topic(), err):
				case <-stop:
				case <-m.closed:
				}
			}
			return
		}
		env.ReceivedTopic = msg.Topic()
		select {
		case out <- env:
		case <-stop:
		case <-m.closed:
		}
	}
}

func (m *mqttClient) Unsubscribe(topics ...string) error {
	m.mu.Lock()
	for _, t := range topics {
		if stop, ok := m.stops[t]; ok {
			close(stop)
			delete(m.stops, t)
		}
	}
	m.mu.Unlock()
	return m.wait(m.cl.Unsubscribe(topics...), "unsubscribe")
}

// Request publishes msg on requestTopic and waits for the answer on
// responseTopicPrefix/<RequestID> (a new UUID when it has none), which it
// subscribes first, as go-mod-messaging's Request.
func (m *mqttClient) Request(msg types.MessageEnvelope, requestTopic string, responseTopicPrefix string, timeout time.Duration) (*types.MessageEnvelope, error) {
	if strings.TrimSpace(msg.RequestID) == "" {
		msg.RequestID = newUUID()
	}
	responseTopic := responseTopicPrefix + "/" + msg.RequestID
	errs, msgs := make(chan error, 1), make(chan types.MessageEnvelope, 1)
	if err := m.Subscribe([]types.TopicChannel{{Topic: responseTopic, Messages: msgs}}, errs); err != nil {
		return nil, fmt.Errorf("unable to create response subscription: %w", err)
	}
	defer m.Unsubscribe(responseTopic)
	if err := m.Publish(msg, requestTopic); err != nil {
		return nil, fmt.Errorf("unable to create publish request to %s: %w", requestTopic, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil, fmt.Errorf("timed out waiting for response on %s topic", responseTopic)
	case err := <-errs:
		return nil, fmt.Errorf("encountered error waiting for response to %s: %w", requestTopic, err)
	case res := <-msgs:
		return &res, nil
	}
}

// Disconnect ends the session; the handlers stop waiting.
func (m *mqttClient) Disconnect() error {
	m.mu.Lock()
	select {
	case <-m.closed:
	default:
		close(m.closed)
	}
	m.mu.Unlock()
	m.cl.Disconnect(250)
	return nil
}

// newUUID returns a random (version 4) UUID, as go-mod-messaging gives a
// request without an id.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
