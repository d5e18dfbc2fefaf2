package mqttdial

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFraming(t *testing.T) {
	for _, c := range []struct {
		in     []byte
		n      int
		length int64
		up     bool
		bad    bool
	}{
		{in: []byte{0x20}, n: 0},
		{in: []byte{0x20, 2, 0, 0}, n: 2, length: 2, up: true},
		{in: []byte{0x30, 0x80}, n: 0},
		{in: []byte{0x30, 0x80, 0x01}, n: 3, length: 128},
		{in: []byte{0x20, 0xff, 0xff, 0xff, 0x7f}, n: 5, length: 268435455, up: true},
		{in: []byte{0x30, 0xff, 0xff, 0xff, 0xff}, bad: true},
	} {
		n, length, up, err := Framing{}.Frame(c.in)
		if (err != nil) != c.bad || n != c.n || length != c.length || up != c.up {
			t.Errorf("% x: %d %d %v %v, want %d %d %v (bad %v)", c.in, n, length, up, err, c.n, c.length, c.up, c.bad)
		}
	}
}
