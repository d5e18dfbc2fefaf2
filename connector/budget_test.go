package connector_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/connkit/connkit/connector"
)

// lenFraming is a toy protocol: a type byte and a 4-byte length; type 'U'
// shows the link up.
type lenFraming struct{}

func (lenFraming) Frame(b []byte) (int, int64, bool, error) {
	if len(b) < 5 {
		return 0, 0, false, nil
	}
	return 5, int64(binary.BigEndian.Uint32(b[1:])), b[0] == 'U', nil
}

func frame(typ byte, body []byte) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{typ}, uint32(len(body))), body...)
}

// stream is a net.Conn that reads its bytes a few at a time.
type stream struct {
	net.Conn
	r     io.Reader
	chunk int
}

func (s *stream) Read(p []byte) (int, error) {
	if len(p) > s.chunk {
		p = p[:s.chunk]
	}
	return s.r.Read(p)
}

func guarded(data []byte, chunk int, f connector.Framing, o *connector.GuardOptions) *connector.Guard {
	return connector.NewGuard(&stream{r: bytes.NewReader(data), chunk: chunk}, f, o)
}

// TestGuardPassesWhatIsAllowed: frames within the limits reach the reader
// intact, however the stream is cut, and the guard sees the link up.
func TestGuardPassesWhatIsAllowed(t *testing.T) {
	var in []byte
	in = append(in, frame('H', []byte("hello"))...)
	in = append(in, frame('U', nil)...)
	in = append(in, frame('M', bytes.Repeat([]byte("x"), 100_000))...) // over the budget, but up
	in = append(in, frame('M', []byte("tail"))...)
	for _, chunk := range []int{1, 3, 7, 4096, 1 << 20} {
		g := guarded(in, chunk, lenFraming{}, &connector.GuardOptions{Max: 100_000})
		got, err := io.ReadAll(g)
		if err != nil || !bytes.Equal(got, in) {
			t.Fatalf("chunks of %d: %d bytes, %v; want the %d sent", chunk, len(got), err, len(in))
		}
		if !g.IsUp() {
			t.Errorf("chunks of %d: not up after U", chunk)
		}
	}
}

// TestGuardRefusesClaims: a claim over the handshake budget before up, or
// over Max after, is refused before a byte of its frame is read, and every
// read after fails the same way.
func TestGuardRefusesClaims(t *testing.T) {
	huge := binary.BigEndian.AppendUint32([]byte{'H'}, 1<<31) // the claim alone
	for name, c := range map[string]struct {
		in    []byte
		pass  int // bytes the reader may get
		up    bool
		words string
	}{
		"a claim before up":     {huge, 0, false, "HandshakeBudget"},
		"many frames before up": {bytes.Repeat(frame('H', make([]byte, 1000)), 70), 65 * 1005, false, "before the link was up"},
		"a claim after up":      {append(frame('U', nil), huge...), 5, true, "over maxMessageBytes (1000); raise maxMessageBytes"},
	} {
		t.Run(name, func(t *testing.T) {
			var refused []error
			g := guarded(c.in, 4096, lenFraming{}, &connector.GuardOptions{Max: 1000, What: "toy frame", Refused: func(err error) { refused = append(refused, err) }})
			got, err := io.ReadAll(g)
			var le *connector.LimitError
			if !errors.As(err, &le) || !errors.Is(err, connector.ErrTooLarge) || le.Up != c.up || !strings.Contains(err.Error(), c.words) || !strings.Contains(err.Error(), "toy frame") {
				t.Fatalf("error %v, want a LimitError (up %v) saying %q", err, c.up, c.words)
			}
			if len(got) > c.pass {
				t.Errorf("the reader got %d bytes, want at most %d: the refused frame's header reached it", len(got), c.pass)
			}
			if _, err2 := g.Read(make([]byte, 10)); err2 != err {
				t.Errorf("a read after the refusal: %v", err2)
			}
			if len(refused) != 1 {
				t.Errorf("Refused called %d times", len(refused))
			}
		})
	}
}

// TestGuardBelowTLS: a guard without framing counts bytes until the guard
// above it sees the link up.
func TestGuardBelowTLS(t *testing.T) {
	below := guarded(make([]byte, 200_000), 4096, nil, nil)
	n, err := io.Copy(io.Discard, below)
	if !errors.Is(err, connector.ErrTooLarge) || n > connector.HandshakeBudget {
		t.Fatalf("read %d bytes: %v, want at most the budget", n, err)
	}
	below = guarded(make([]byte, 200_000), 4096, nil, nil)
	upper := guarded(frame('U', nil), 1, lenFraming{}, &connector.GuardOptions{Below: below})
	io.ReadAll(upper)
	if !below.IsUp() {
		t.Fatal("the guard below was not told the link is up")
	}
	if n, err := io.Copy(io.Discard, below); err != nil || n != 200_000 {
		t.Errorf("after up: %d bytes, %v", n, err)
	}
}

// timeoutConn fails its first read with a timeout, then reads r.
type timeoutConn struct {
	net.Conn
	r     io.Reader
	timed bool
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }

func (c *timeoutConn) Read(p []byte) (int, error) {
	if !c.timed {
		c.timed = true
		n, _ := c.r.Read(p[:2])
		return n, timeoutErr{}
	}
	return c.r.Read(p)
}

func (c *timeoutConn) SetReadDeadline(time.Time) error { return nil }

// TestGuardKeepsAHalfReadHeader: a read that times out in the middle of a
// header loses nothing: the next read goes on from there.
func TestGuardKeepsAHalfReadHeader(t *testing.T) {
	in := frame('H', []byte("abc"))
	g := connector.NewGuard(&timeoutConn{r: bytes.NewReader(in)}, lenFraming{}, nil)
	if _, err := g.Read(make([]byte, 10)); err == nil {
		t.Fatal("no timeout")
	}
	got, err := io.ReadAll(g)
	if err != nil || !bytes.Equal(got, in) {
		t.Errorf("after the timeout: %q, %v", got, err)
	}
}

// TestMaxMessageField: the field every type declares, and its check.
func TestMaxMessageField(t *testing.T) {
	s := &connector.Schema{Fields: []connector.Field{connector.MaxMessageField(connector.DefaultMaxMessageBytes, "the largest")}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := s.Decode(nil)
	if n, fe := connector.MaxMessage(p); err != nil || fe != nil || n != 1<<20 {
		t.Errorf("default: %d %v %v", n, fe, err)
	}
	p, _ = s.Decode(map[string]any{"maxMessageBytes": 0})
	if _, fe := connector.MaxMessage(p); len(fe) != 1 || fe[0].Field != "maxMessageBytes" {
		t.Errorf("0: %v, want a field error", fe)
	}
}
