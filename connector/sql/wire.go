package sql

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/internal/tlsdial"
)

// maxPacket is the largest payload of one MySQL packet, the protocol's
// own limit (a 24-bit length): the default of maxMessageBytes, since a row
// may legitimately be that large.
const maxPacket = 1<<24 - 1

// clientSSL is the capability flag of a client that switches to TLS.
const clientSSL = 1 << 11

// wire is the socket the MySQL driver gets: the server's packets come
// through a Guard (HandshakeBudget until the first OK after the greeting,
// then maxMessageBytes), and TLS is made here rather than by the driver,
// so that the Guard sees the packets inside it. The driver is told no TLS;
// when it sends its login, wire sends the server the SSL request that the
// driver would have sent, makes the handshake, and sends the login over
// TLS, one sequence number on (and the server's answers one back) until
// the login ends.
type wire struct {
	ctx context.Context // the dial's, for the TLS handshake
	raw net.Conn
	g   *connector.Guard // over sw: the packets

	tls      *tls.Config // nil: plain
	fallback bool        // tls=preferred: plain if the server has no TLS
	failed   func(error) // hears the errors the driver reports as a bad connection

	mu  sync.Mutex
	cur net.Conn // below, then TLS over it

	// Until the login ends (owned by the reader and the writer in turn:
	// the protocol is half duplex until then).
	login     bool   // still in the connection phase
	shift     byte   // 1 once TLS began
	greeting  []byte // the start of the server's greeting
	caps      uint32 // the server's capabilities
	written   bool   // the login was sent
	pending   []byte // a login not yet whole
	rd, wr    tracker
	greetDone bool
}

// newWire wraps the socket nc to the server under the dial's ctx. failed
// hears of a packet refused and of a failed TLS handshake, which the
// driver reports as a bad connection alone.
func newWire(ctx context.Context, nc net.Conn, tc *tls.Config, fallback bool, max int64, failed func(error)) *wire {
	if failed == nil {
		failed = func(error) {}
	}
	below := connector.NewGuard(nc, nil, &connector.GuardOptions{What: "MySQL handshake", Refused: failed})
	w := &wire{ctx: ctx, raw: nc, tls: tc, fallback: fallback, failed: failed, cur: below, login: true}
	w.g = connector.NewGuard(swap{w}, &framing{max: max}, &connector.GuardOptions{Max: max, What: "MySQL packet", Below: below, Refused: failed})
	return w
}

// swap reads and writes the current conn of a wire.
type swap struct{ w *wire }

func (s swap) conn() net.Conn {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return s.w.cur
}

func (s swap) Read(p []byte) (int, error)         { return s.conn().Read(p) }
func (s swap) Write(p []byte) (int, error)        { return s.conn().Write(p) }
func (s swap) Close() error                       { return s.w.raw.Close() }
func (s swap) LocalAddr() net.Addr                { return s.w.raw.LocalAddr() }
func (s swap) RemoteAddr() net.Addr               { return s.w.raw.RemoteAddr() }
func (s swap) SetDeadline(t time.Time) error      { return s.conn().SetDeadline(t) }
func (s swap) SetReadDeadline(t time.Time) error  { return s.conn().SetReadDeadline(t) }
func (s swap) SetWriteDeadline(t time.Time) error { return s.conn().SetWriteDeadline(t) }

func (w *wire) Close() error                       { return w.raw.Close() }
func (w *wire) LocalAddr() net.Addr                { return w.raw.LocalAddr() }
func (w *wire) RemoteAddr() net.Addr               { return w.raw.RemoteAddr() }
func (w *wire) SetDeadline(t time.Time) error      { return w.g.SetDeadline(t) }
func (w *wire) SetReadDeadline(t time.Time) error  { return w.g.SetReadDeadline(t) }
func (w *wire) SetWriteDeadline(t time.Time) error { return w.g.SetWriteDeadline(t) }

// SyscallConn lets the driver check an idle pooled conn for a server that
// closed it.
func (w *wire) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := w.raw.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("not a system socket")
}

// tracker follows packet boundaries in one direction of the stream.
type tracker struct {
	hdr  [4]byte
	n    int // header bytes seen
	left int // body bytes left
	body int // body bytes seen of the current packet
}

// Read implements net.Conn.
func (w *wire) Read(p []byte) (int, error) {
	n, err := w.g.Read(p)
	if w.login {
		w.scan(p[:n])
	}
	return n, err
}

// scan follows the server's packets until the login ends: it keeps the
// greeting's capabilities, moves sequence numbers back by shift, and ends
// the login at its OK or ERR.
func (w *wire) scan(b []byte) {
	t := &w.rd
	for i := 0; i < len(b) && w.login; {
		if t.left == 0 && t.n < 4 {
			if t.n == 3 {
				b[i] -= w.shift
			}
			t.hdr[t.n] = b[i]
			t.n++
			i++
			if t.n == 4 {
				t.left = int(t.hdr[0]) | int(t.hdr[1])<<8 | int(t.hdr[2])<<16
				t.body = 0
				if t.left == 0 {
					t.n = 0
				}
			}
			continue
		}
		k := min(t.left, len(b)-i)
		if !w.greetDone && len(w.greeting) < 512 {
			w.greeting = append(w.greeting, b[i:i+min(k, 512-len(w.greeting))]...)
		}
		if w.greetDone && t.body == 0 && (b[i] == 0x00 || b[i] == 0xff) {
			w.login = false // the login's OK or ERR: the command phase begins
		}
		t.body += k
		t.left -= k
		i += k
		if t.left == 0 {
			t.n = 0
			if !w.greetDone {
				w.greetDone = true
				w.caps = greetingCaps(w.greeting)
			}
		}
	}
}

// greetingCaps reads the lower capability flags of a greeting (protocol
// 10): version, a NUL-ended server version, a connection id, 8 bytes of
// auth data and a filler before them. 0 if it cannot.
func greetingCaps(g []byte) uint32 {
	if len(g) == 0 || g[0] != 10 {
		return 0
	}
	for i := 1; i < len(g); i++ {
		if g[i] == 0 {
			if pos := i + 1 + 4 + 8 + 1; pos+2 <= len(g) {
				return uint32(binary.LittleEndian.Uint16(g[pos:]))
			}
			return 0
		}
	}
	return 0
}

// Write implements net.Conn.
func (w *wire) Write(p []byte) (int, error) {
	if !w.login {
		return w.g.Write(p)
	}
	if w.written {
		if w.shift == 0 {
			return w.g.Write(p)
		}
		q := append([]byte(nil), p...) // a Write must not change p
		w.renumber(q)
		if _, err := w.g.Write(q); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	// The login: whole, then sent as TLS needs.
	w.pending = append(w.pending, p...)
	if len(w.pending) < 4 {
		return len(p), nil
	}
	size := 4 + (int(w.pending[0]) | int(w.pending[1])<<8 | int(w.pending[2])<<16)
	if len(w.pending) < size {
		return len(p), nil
	}
	pkt, rest := w.pending[:size], w.pending[size:]
	w.written = true
	if err := w.sendLogin(pkt); err != nil {
		w.failed(err)
		return 0, err
	}
	if len(rest) > 0 {
		w.renumber(rest)
		if _, err := w.g.Write(rest); err != nil {
			return 0, err
		}
	}
	w.pending = nil
	return len(p), nil
}

// sendLogin sends the driver's login packet, after TLS if it is wanted.
func (w *wire) sendLogin(pkt []byte) error {
	if w.tls == nil || len(pkt) < 4+32 {
		_, err := w.g.Write(pkt)
		return err
	}
	if w.caps&clientSSL == 0 {
		if w.fallback {
			_, err := w.g.Write(pkt)
			return err
		}
		return fmt.Errorf("%w (tls=true in the url; tls=preferred falls back to plain)", mysql.ErrNoTLS)
	}
	caps := binary.LittleEndian.Uint32(pkt[4:]) | clientSSL
	binary.LittleEndian.PutUint32(pkt[4:], caps)
	// The SSL request is the login's first 32 bytes (capabilities, packet
	// size, collation, filler), as the driver writes it.
	req := append([]byte{32, 0, 0, pkt[3]}, pkt[4:4+32]...)
	w.mu.Lock()
	below := w.cur
	w.mu.Unlock()
	if _, err := below.Write(req); err != nil {
		return err
	}
	tc, err := tlsdial.Handshake(w.ctx, below, w.tls)
	if err != nil {
		return fmt.Errorf("TLS with the MySQL server: %w", err)
	}
	w.mu.Lock()
	w.cur = tc
	w.mu.Unlock()
	w.shift = 1
	pkt[3]++
	_, err = tc.Write(pkt)
	return err
}

// renumber moves the sequence numbers of the driver's packets in p on by
// shift, until the login ends.
func (w *wire) renumber(p []byte) {
	if w.shift == 0 {
		return
	}
	t := &w.wr
	for i := 0; i < len(p); {
		if t.left == 0 {
			if t.n == 3 {
				p[i] += w.shift
			}
			t.hdr[t.n] = p[i]
			t.n++
			i++
			if t.n == 4 {
				t.left = int(t.hdr[0]) | int(t.hdr[1])<<8 | int(t.hdr[2])<<16
				t.n = 0
			}
			continue
		}
		k := min(t.left, len(p)-i)
		t.left -= k
		i += k
	}
}

// maxColumns bounds the columns of a result: the driver makes a slice of
// the count a server claims before reading one (MySQL and MariaDB allow
// 4096).
const maxColumns = 1 << 16

// columnCount reads the payload p of a result set's first packet: a
// length-encoded integer alone (with a metadata flag after it, maybe).
// ok is false for any other packet: an OK, an error, a row.
func columnCount(p []byte) (uint64, bool) {
	var size int
	switch c := p[0]; {
	case c == 0x00 || c == 0xff || c == 0xfb:
		return 0, false // OK, error, local infile
	case c < 0xfb:
		return uint64(c), len(p) <= 2
	case c == 0xfc:
		size = 2
	case c == 0xfd:
		size = 3
	default: // 0xfe
		size = 8
	}
	if len(p) != 1+size && len(p) != 2+size {
		return 0, false
	}
	var n uint64
	for i := size; i >= 1; i-- {
		n = n<<8 | uint64(p[i])
	}
	return n, true
}

// framing is that of the packets a MySQL server sends: a 3-byte length
// and a sequence number. The greeting first; the link is up at the first
// OK (a payload beginning 0x00) after it. After it, a payload of the
// largest size is continued by the next packet (the driver joins them):
// the whole of such a run is bounded by max, not each packet.
type framing struct {
	greeted, up bool
	max         int64 // maxMessageBytes
	run         int64 // bytes of the message being continued
}

func (f *framing) Frame(b []byte) (int, int64, bool, error) {
	if len(b) < 4 {
		return 0, 0, false, nil
	}
	n := int64(b[0]) | int64(b[1])<<8 | int64(b[2])<<16
	if f.up {
		total := f.run + n
		if f.max > 0 && total > f.max {
			return 0, 0, false, &connector.LimitError{What: "MySQL message (packets joined)", Claimed: total, Limit: f.max, Up: true, Prop: connector.MaxMessageProp}
		}
		if n == maxPacket {
			f.run = total
		} else {
			f.run = 0
		}
		if f.run == 0 && n > 0 && n <= 10 {
			if len(b) < 4+int(n) {
				return 0, 0, false, nil // the payload, to read a column count
			}
			if count, ok := columnCount(b[4 : 4+n]); ok && count > maxColumns {
				return 0, 0, false, &connector.LimitError{What: "MySQL result of that many columns", Claimed: int64(min(count, 1<<62)), Limit: maxColumns, Up: true, Prop: "columns (MySQL allows 4096)"}
			}
		}
		return 4, n, false, nil
	}
	if n > 0 && len(b) < 5 {
		return 0, 0, false, nil
	}
	up := false
	if !f.greeted {
		f.greeted = true
	} else if n > 0 && b[4] == 0x00 {
		f.up, up = true, true
	}
	return 4, n, up, nil
}
