// Package wsdial is the one WebSocket handshake of connkit's clients (the
// websocket type, and MQTT over WebSocket). Its HTTP client dials through
// connector.Dial (the dial policy, a check's steps), follows no redirect,
// bounds the response head, and guards the socket: the head and every
// frame header are counted and checked before coder/websocket reads them.
package wsdial

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/coder/websocket"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/internal/tlsdial"
)

// MaxHeaderBytes bounds the response head of a handshake.
const MaxHeaderBytes = 32 << 10

// Options are those of one handshake.
type Options struct {
	Header       http.Header
	Subprotocols []string
	// TLS is the config of a wss:// handshake; nil: the default, with the
	// URL's host as the server name.
	TLS *tls.Config
	// Max is the largest message (and frame) the peer may send once the
	// link is up: the read limit. 0 means DefaultMaxMessageBytes.
	Max int64
	// Prop names Max in errors; "" means maxMessageBytes.
	Prop string
}

// ErrRedirect is matched by the error of a handshake answered with a
// redirect, which is never followed: a header (an API key) or a password
// would go with it to another host.
var ErrRedirect = errors.New("the handshake was redirected")

// Dial makes the WebSocket handshake with u under ctx. The response is
// that of a failed handshake, if there was one (its status says why).
func Dial(ctx context.Context, u string, o *Options) (*websocket.Conn, *http.Response, error) {
	max := o.Max
	if max <= 0 {
		max = connector.DefaultMaxMessageBytes
	}
	guard := func(c net.Conn, below *connector.Guard) net.Conn {
		return connector.NewGuard(c, &framing{}, &connector.GuardOptions{Max: max, Prop: o.Prop, What: "WebSocket frame", Below: below})
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := connector.Dial(ctx, network, addr, nil)
			if err != nil {
				return nil, err
			}
			return guard(c, nil), nil
		},
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			tc, below, err := tlsdial.Dial(ctx, network, addr, o.TLS)
			if err != nil {
				return nil, err
			}
			return guard(tc, below), nil
		},
		MaxResponseHeaderBytes: MaxHeaderBytes,
		DisableKeepAlives:      true,
		// No Proxy: one from the environment would take the dial away
		// from the policy.
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c, res, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: client, HTTPHeader: o.Header, Subprotocols: o.Subprotocols, CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if res != nil && res.StatusCode >= 300 && res.StatusCode < 400 {
			to := "nowhere (no Location)"
			if loc, lerr := res.Location(); lerr == nil {
				// The host alone: a path or query may hold a token.
				to = connector.Short(loc.Host)
			}
			err = fmt.Errorf("%w: the peer answered %d %s, redirecting to %s; connkit follows no redirect, so that no header or password reaches another host: give the final address", ErrRedirect, res.StatusCode, http.StatusText(res.StatusCode), to)
		}
		return nil, res, err
	}
	c.SetReadLimit(max)
	return c, nil, nil
}

// framing is that of a WebSocket client's socket: the response head of
// the handshake (up when it ends a 101), then the server's frames.
type framing struct {
	state int
}

const (
	statusLine = iota // the response has not begun
	head              // the head of a 101
	other             // not a 101: nothing more to frame, only to count
	frames
)

func (f *framing) Frame(b []byte) (int, int64, bool, error) {
	switch f.state {
	case frames:
		return frame(b)
	case other:
		return len(b), 0, false, nil
	case statusLine:
		const n = len("HTTP/1.1 101 ")
		if len(b) < n {
			return 0, 0, false, nil
		}
		f.state = other
		if (bytes.HasPrefix(b, []byte("HTTP/1.1 101")) || bytes.HasPrefix(b, []byte("HTTP/1.0 101"))) && (b[n-1] == ' ' || b[n-1] == '\r') {
			f.state = head
		}
		return f.Frame(b)
	}
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		f.state = frames
		return i + 4, 0, true, nil
	}
	// All but what may begin the blank line.
	if len(b) <= 3 {
		return 0, 0, false, nil
	}
	return len(b) - 3, 0, false, nil
}

// frame reads the header of a frame from the server: RFC 6455, 5.2.
func frame(b []byte) (int, int64, bool, error) {
	if len(b) < 2 {
		return 0, 0, false, nil
	}
	n := 2
	if b[1]&0x80 != 0 {
		n += 4 // a mask key, which a server must not send; the client says so
	}
	length := int64(b[1] & 0x7f)
	switch length {
	case 126:
		n += 2
		if len(b) < n {
			return 0, 0, false, nil
		}
		length = int64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		n += 8
		if len(b) < n {
			return 0, 0, false, nil
		}
		l := binary.BigEndian.Uint64(b[2:])
		if l>>63 != 0 {
			return 0, 0, false, fmt.Errorf("a WebSocket frame claiming %d bytes, which RFC 6455 forbids", l)
		}
		length = int64(l)
	}
	if len(b) < n {
		return 0, 0, false, nil
	}
	return n, length, false, nil
}
