package wsdial

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/connkit/connkit/connector"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type reader struct {
	net.Conn
	r     io.Reader
	chunk int
}

func (c *reader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.chunk)]) }

// TestFraming: the head of a 101 and the frames after it pass, in reads of
// any size; a frame over the limit is refused at its header, whatever its
// length's form; the body of a refused handshake is only counted.
func TestFraming(t *testing.T) {
	head := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
	frames := [][]byte{
		{0x81, 5, 'h', 'e', 'l', 'l', 'o'},
		append(binary.BigEndian.AppendUint16([]byte{0x82, 126}, 300), make([]byte, 300)...),
		append(binary.BigEndian.AppendUint64([]byte{0x82, 127}, 1000), make([]byte, 1000)...),
		{0x89, 0x80 | 2, 1, 2, 3, 4, 'p', 'p'}, // masked, as no server may; the client says so
	}
	in := []byte(head)
	for _, f := range frames {
		in = append(in, f...)
	}
	for _, chunk := range []int{1, 2, 5, 4096} {
		g := connector.NewGuard(&reader{r: bytes.NewReader(in), chunk: chunk}, &framing{}, &connector.GuardOptions{Max: 1000})
		got, err := io.ReadAll(g)
		if err != nil || !bytes.Equal(got, in) || !g.IsUp() {
			t.Errorf("chunks of %d: %d of %d bytes, up %v, %v", chunk, len(got), len(in), g.IsUp(), err)
		}
	}
	for name, f := range map[string][]byte{
		"16-bit": binary.BigEndian.AppendUint16([]byte{0x82, 126}, 1001),
		"64-bit": binary.BigEndian.AppendUint64([]byte{0x82, 127}, 1<<40),
		"sign":   binary.BigEndian.AppendUint64([]byte{0x82, 127}, 1<<63),
	} {
		g := connector.NewGuard(&reader{r: bytes.NewReader(append([]byte(head), f...)), chunk: 4096}, &framing{}, &connector.GuardOptions{Max: 1000})
		got, err := io.ReadAll(g)
		if err == nil || len(got) != len(head) {
			t.Errorf("%s: %d bytes, %v; want the head alone, then a refusal", name, len(got), err)
		}
	}
	// Not a 101: the rest is counted against the handshake budget only.
	refused := "HTTP/1.1 302 Found\r\nLocation: ws://elsewhere/\r\n\r\n" + strings.Repeat("x", 100)
	g := connector.NewGuard(&reader{r: strings.NewReader(refused), chunk: 7}, &framing{}, nil)
	if got, err := io.ReadAll(g); err != nil || string(got) != refused || g.IsUp() {
		t.Errorf("a 302: %q, %v, up %v", got, err, g.IsUp())
	}
	endless := io.MultiReader(strings.NewReader("HTTP/1.1 101 Switching Protocols\r\n"), neverEnding('h'))
	g = connector.NewGuard(&reader{r: endless, chunk: 4096}, &framing{}, nil)
	if n, err := io.Copy(io.Discard, g); !errors.Is(err, connector.ErrTooLarge) || n > connector.HandshakeBudget {
		t.Errorf("an endless head: %d bytes, %v", n, err)
	}
}

type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}
