// Package mqttdial is the one MQTT dial of connkit, for the mqtt and edgex
// types: a fresh paho client per dial, whose socket comes from
// connector.Dial (the dial policy, a check's steps) over TCP, TLS or
// WebSocket, is guarded (HandshakeBudget until CONNACK, then the message
// limit), and is closed when the dial's context ends, so that a broker that
// accepts and never answers cannot hold it.
package mqttdial

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/coder/websocket"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/internal/tlsdial"
	"github.com/connkit/connkit/connector/internal/wsdial"
)

// Config is what a dial needs of a connection's props.
type Config struct {
	// Server is the broker's URL: tcp, mqtt, ssl, tls, mqtts, mqtt+ssl,
	// tcps, ws or wss.
	Server       *url.URL
	Version      uint // 3 (MQTT 3.1) or 4 (3.1.1), never a silent fallback
	Username     string
	Password     string
	KeepAlive    time.Duration
	CleanSession bool
	// Store, if set, is paho's store of the packets in flight, kept
	// across dials: with a persistent session a new client resends what
	// the broker may hold half done, under the same packet ids, and
	// issues no id the broker still holds for another message.
	Store paho.Store
	// TLS is the config of a TLS scheme, with its server name.
	TLS *tls.Config
	// MaxMessage is the largest packet the broker may send once the
	// session is up, as its remaining length (maxMessageBytes).
	MaxMessage int64
	// Prop names MaxMessage in errors; "" means maxMessageBytes.
	Prop string
}

// Schemes are the schemes of Config.Server, and whether they speak TLS.
var Schemes = map[string]bool{"tcp": false, "mqtt": false, "ws": false, "ssl": true, "tls": true, "mqtts": true, "mqtt+ssl": true, "tcps": true, "wss": true}

// DefaultPorts are the ports of the schemes.
var DefaultPorts = map[string]string{"tcp": "1883", "mqtt": "1883", "ssl": "8883", "tls": "8883", "mqtts": "8883", "mqtt+ssl": "8883", "tcps": "8883", "ws": "80", "wss": "443"}

// attempt lets a dial's socket be closed when its context ends, until the
// dial has succeeded.
type attempt struct {
	mu   sync.Mutex
	stop func() bool
}

func (a *attempt) keep() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stop != nil {
		a.stop()
	}
}

// options returns paho options for one dial under ctx with clientID.
func (c *Config) options(ctx context.Context, clientID string, a *attempt) *paho.ClientOptions {
	o := paho.NewClientOptions()
	o.AddBroker(c.Server.String())
	o.SetClientID(clientID)
	o.SetUsername(c.Username)
	o.SetPassword(c.Password)
	o.SetProtocolVersion(c.Version) // explicit: no silent fallback to 3.1
	o.SetKeepAlive(c.KeepAlive)
	o.SetAutoReconnect(false) // the Manager owns retries
	o.SetConnectRetry(false)
	o.SetCleanSession(c.CleanSession)
	if c.Store != nil {
		o.SetStore(c.Store)
	}
	// A publish or subscribe waits at most this long for paho's writer:
	// on a link that died unnoticed it would wait 30 s, and hold Close.
	o.SetWriteTimeout(5 * time.Second)
	timeout := 30 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	o.SetConnectTimeout(timeout)
	o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
		nc, err := c.open(ctx, u)
		if err != nil {
			return nil, err
		}
		a.mu.Lock()
		a.stop = context.AfterFunc(ctx, func() { nc.Close() })
		a.mu.Unlock()
		return nc, nil
	})
	return o
}

// open dials u under ctx and guards the MQTT byte stream.
func (c *Config) open(ctx context.Context, u *url.URL) (net.Conn, error) {
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), DefaultPorts[u.Scheme])
	}
	var nc net.Conn
	var below *connector.Guard
	var err error
	switch tlsScheme, known := Schemes[u.Scheme]; {
	case !known:
		return nil, fmt.Errorf("scheme %q is not one MQTT is spoken over", u.Scheme)
	case u.Scheme == "ws" || u.Scheme == "wss":
		nc, err = c.websocket(ctx, u)
	case tlsScheme:
		nc, below, err = tlsdial.Dial(ctx, "tcp", addr, c.TLS)
	default:
		nc, err = connector.Dial(ctx, "tcp", addr, nil)
	}
	if err != nil {
		return nil, err
	}
	return connector.NewGuard(nc, Framing{}, &connector.GuardOptions{Max: c.MaxMessage, Prop: c.Prop, What: "MQTT packet", Below: below}), nil
}

// mqttHeader is the longest fixed header of an MQTT packet.
const mqttHeader = 5

// websocket opens MQTT over WebSocket with the house's handshake rather
// than paho's own: the policy, no redirect, a bounded head.
func (c *Config) websocket(ctx context.Context, u *url.URL) (net.Conn, error) {
	du := *u
	du.User = nil
	max := c.MaxMessage
	if max <= 0 {
		max = connector.DefaultMaxMessageBytes
	}
	wc, _, err := wsdial.Dial(ctx, du.String(), &wsdial.Options{
		Subprotocols: []string{"mqtt"}, TLS: c.TLS, Prop: c.Prop,
		// A broker frames one packet a message: its largest, with its
		// fixed header.
		Max: max + mqttHeader,
	})
	if err != nil {
		return nil, err
	}
	// The link outlives the dial: its own context ends when it closes.
	return closeNow{websocket.NetConn(context.Background(), wc, websocket.MessageBinary), wc}, nil
}

// closeNow closes a WebSocket without the close handshake: MQTT says
// goodbye with DISCONNECT, and a peer that never answers the handshake
// (a hostile one the Guard refused) would hold every close for 5 s.
type closeNow struct {
	net.Conn
	ws *websocket.Conn
}

func (c closeNow) Close() error { return c.ws.CloseNow() }

// Dial connects a new paho client under ctx with clientID; lost, if set,
// is its connection-lost handler, and deliver, if set, gets every message
// no route takes: those a persistent session's broker sends as soon as
// CONNACK is out, before any route is added.
func (c *Config) Dial(ctx context.Context, clientID string, lost paho.ConnectionLostHandler, deliver paho.MessageHandler) (paho.Client, error) {
	a := &attempt{}
	o := c.options(ctx, clientID, a)
	if lost != nil {
		o.SetConnectionLostHandler(lost)
	}
	if deliver != nil {
		o.SetDefaultPublishHandler(deliver)
	}
	cl := paho.NewClient(o)
	tok := cl.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		// The socket is closed by now, so paho gives up promptly.
		select {
		case <-tok.Done():
		case <-time.After(5 * time.Second):
			return nil, fmt.Errorf("connect to %s: %w", c.Server.Redacted(), ctx.Err())
		}
	}
	if err := tok.Error(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("connect to %s: %w", c.Server.Redacted(), err)
	}
	a.keep()
	return cl, nil
}

// Reason classifies a dial error for checks and for permanence.
func Reason(err error) string {
	switch {
	case errors.Is(err, packets.ErrorRefusedNotAuthorised), errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return connector.ReasonUnauthorized
	case errors.Is(err, connector.ErrTooLarge), errors.Is(err, wsdial.ErrRedirect):
		return connector.ReasonUnreachable
	}
	return connector.NetReason(err)
}

// Framing is that of the MQTT packets a broker sends (MQTT 3.1.1, 2.2):
// a type byte and a remaining length of one to four bytes; CONNACK
// shows the session up.
type Framing struct{}

// Frame implements connector.Framing.
func (Framing) Frame(b []byte) (int, int64, bool, error) {
	var length int64
	for i := 1; i < len(b) && i < mqttHeader; i++ {
		length |= int64(b[i]&0x7f) << (7 * (i - 1))
		if b[i]&0x80 == 0 {
			return i + 1, length, b[0]>>4 == packets.Connack, nil
		}
	}
	if len(b) >= mqttHeader {
		return 0, 0, false, errors.New("an MQTT packet whose remaining length runs over 4 bytes")
	}
	return 0, 0, false, nil
}
