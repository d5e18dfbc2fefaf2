package connector

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// HandshakeBudget is the most a peer can make connkit read before its link
// is up (connect, TLS, handshake, auth), whatever its length fields claim.
// A Guard refuses a frame that claims more before a byte of it reaches the
// client library, so that a library that allocates what a header claims
// (paho, the MySQL driver, mangos) allocates at most this much per dial.
const HandshakeBudget = 64 << 10

// DefaultMaxMessageBytes is the default of maxMessageBytes: 1 MiB, EMQX's
// default max_packet_size and the REST API's body limit, so that a peer
// may send a rule no more than an operator may send the API.
const DefaultMaxMessageBytes = 1 << 20

// MaxMessageProp names the prop of every type that bounds the largest
// message its peer may send once the link is up.
const MaxMessageProp = "maxMessageBytes"

// MaxMessageField returns the schema field of maxMessageBytes, with
// default def and doc saying what it bounds for the type, so that every
// type declares it alike.
func MaxMessageField(def int64, doc string) Field {
	return Field{Name: MaxMessageProp, Kind: Int, Default: def, Doc: doc}
}

// MaxMessage returns the maxMessageBytes of p, or a FieldError if it is
// not a positive number of bytes.
func MaxMessage(p Props) (int64, FieldErrors) {
	n := p.Int(MaxMessageProp)
	if n <= 0 {
		return 0, FieldErrors{{Field: MaxMessageProp, Message: "must be a positive number of bytes"}}
	}
	return n, nil
}

// ErrTooLarge is matched (errors.Is) by the error of a frame that a Guard
// refused.
var ErrTooLarge = errors.New("the peer sent more than it may")

// LimitError is the error of a frame that a Guard refused: its header
// claimed more than the peer may send.
type LimitError struct {
	What    string // what was refused: "MQTT packet", "WebSocket frame"
	Claimed int64  // the bytes claimed (before up, with all read so far)
	Limit   int64
	// Up is false for a claim before the link was up, bounded by
	// HandshakeBudget; true for one bounded by Prop.
	Up   bool
	Prop string
}

func (e *LimitError) Error() string {
	if !e.Up {
		return fmt.Sprintf("before the link was up, the peer sent or claimed %d bytes (%s), over the %d bytes read until then (connector.HandshakeBudget): it is not the peer expected, or it is hostile",
			e.Claimed, e.What, e.Limit)
	}
	return fmt.Sprintf("the peer sent a %d-byte %s, over %s (%d); raise %s to accept it", e.Claimed, e.What, e.Prop, e.Limit, e.Prop)
}

// Is makes a LimitError match ErrTooLarge.
func (e *LimitError) Is(target error) bool { return target == ErrTooLarge }

// Framing tells a Guard where the frames of a protocol begin and what they
// claim. A Framing may keep state: each Guard has its own.
type Framing interface {
	// Frame is called at the start of each frame with the bytes read of it
	// so far (at least one, at most a Guard's buffer). It returns n == 0
	// to ask for more, or the frame's header length n (at most len(b))
	// and the body length its header claims. up reports that the frame
	// shows the link is up: frames after it are bounded by the message
	// limit rather than the handshake budget.
	Frame(b []byte) (n int, body int64, up bool, err error)
}

// GuardOptions are the limits of a Guard.
type GuardOptions struct {
	// Max is the largest body a frame may claim once the link is up;
	// 0 means DefaultMaxMessageBytes.
	Max int64
	// Prop names Max in errors; "" means maxMessageBytes.
	Prop string
	// What names a frame in errors: "MQTT packet".
	What string
	// Below is a Guard without framing under this one (beneath TLS),
	// whose budget ends when this one sees the link up.
	Below *Guard
	// Refused, if set, is called once with the error of a refused frame.
	Refused func(error)
}

// guardBuffer is the read-ahead of a Guard: frame headers are read into
// it, and so are the bodies of small frames.
const guardBuffer = 512

// Guard is a net.Conn that gives a client library nothing of a frame whose
// header claims more than the peer may send: before the link is up, more
// than is left of HandshakeBudget (which also bounds every byte read until
// then); after, a body over Max. Reading a refused frame fails with a
// LimitError, as does every read after it; writes pass through.
//
// Without a Framing a Guard counts bytes only, until SetUp: it goes under
// TLS, and the Guard above TLS, which sees the frames, tells it.
type Guard struct {
	net.Conn
	f       Framing
	o       GuardOptions
	up      atomic.Bool
	refused sync.Once

	// Owned by the reader.
	buf  []byte
	r, w int   // buf[r:w] is read and not yet given out
	pass int64 // bytes of the current frame that may be given out
	used int64 // bytes of the frames before up
	rerr error // an error of the conn, held until buf is empty
	err  error // the refusal, returned by every read
}

// NewGuard returns c guarded with framing f (nil: a byte count until
// SetUp) and options o (nil: defaults).
func NewGuard(c net.Conn, f Framing, o *GuardOptions) *Guard {
	g := &Guard{Conn: c, f: f}
	if o != nil {
		g.o = *o
	}
	if g.o.Max <= 0 {
		g.o.Max = DefaultMaxMessageBytes
	}
	if g.o.Prop == "" {
		g.o.Prop = MaxMessageProp
	}
	if g.o.What == "" {
		g.o.What = "frame"
	}
	if f != nil {
		g.buf = make([]byte, guardBuffer)
	}
	return g
}

// IsUp reports whether the link was seen up.
func (g *Guard) IsUp() bool { return g.up.Load() }

// SetUp ends the handshake budget of a Guard, and of the one below it.
func (g *Guard) SetUp() {
	if !g.up.Swap(true) && g.o.Below != nil {
		g.o.Below.SetUp()
	}
}

// NetConn returns the guarded conn.
func (g *Guard) NetConn() net.Conn { return g.Conn }

func (g *Guard) refuse(err error) error {
	g.err = err
	g.refused.Do(func() {
		if g.o.Refused != nil {
			g.o.Refused(err)
		}
	})
	return err
}

// Read implements net.Conn.
func (g *Guard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if g.f == nil {
		n, err := g.Conn.Read(p)
		if !g.up.Load() {
			if g.used += int64(n); g.used > HandshakeBudget {
				return 0, g.refuse(&LimitError{What: g.o.What, Claimed: g.used, Limit: HandshakeBudget, Prop: g.o.Prop})
			}
		}
		return n, err
	}
	for {
		if g.pass > 0 {
			if g.r < g.w {
				avail := g.w - g.r
				if int64(avail) > g.pass {
					avail = int(g.pass)
				}
				n := copy(p, g.buf[g.r:g.r+avail])
				g.r += n
				g.pass -= int64(n)
				return n, nil
			}
			if int64(len(p)) > g.pass {
				p = p[:g.pass]
			}
			n, err := g.Conn.Read(p)
			g.pass -= int64(n)
			return n, err
		}
		if g.r < g.w {
			n, body, up, err := g.f.Frame(g.buf[g.r:g.w])
			switch {
			case err != nil:
				return 0, g.refuse(err)
			case n < 0 || n > g.w-g.r || body < 0:
				return 0, g.refuse(fmt.Errorf("%s framing: a header of %d bytes claiming %d, of %d read", g.o.What, n, body, g.w-g.r))
			case n > 0:
				if err := g.admit(int64(n), body, up); err != nil {
					return 0, g.refuse(err)
				}
				continue
			}
			if g.w-g.r == len(g.buf) {
				return 0, g.refuse(fmt.Errorf("a %s header longer than %d bytes", g.o.What, len(g.buf)))
			}
		}
		if g.rerr != nil {
			err := g.rerr
			g.rerr = nil
			return 0, err
		}
		if g.r > 0 {
			g.w = copy(g.buf, g.buf[g.r:g.w])
			g.r = 0
		}
		n, err := g.Conn.Read(g.buf[g.w:])
		g.w += n
		if err != nil {
			if n == 0 {
				return 0, err
			}
			g.rerr = err
		}
	}
}

// admit checks a frame of header n claiming body against the limits, and
// lets it through.
func (g *Guard) admit(n, body int64, up bool) error {
	if g.up.Load() {
		if body > g.o.Max {
			return &LimitError{What: g.o.What, Claimed: body, Limit: g.o.Max, Up: true, Prop: g.o.Prop}
		}
	} else {
		if g.used+n+body > HandshakeBudget {
			return &LimitError{What: g.o.What, Claimed: g.used + n + body, Limit: HandshakeBudget, Prop: g.o.Prop}
		}
		g.used += n + body
		if up {
			g.SetUp()
		}
	}
	g.pass = n + body
	return nil
}
