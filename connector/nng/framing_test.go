package nng

import (
	"encoding/binary"
	"testing"
)

// TestFraming: the SP header, then each message's size, after a byte of 1
// over IPC.
func TestFraming(t *testing.T) {
	hdr := []byte{0, 'S', 'P', 0, 0, 0x10, 0, 0}
	for _, ipc := range []bool{false, true} {
		f := &framing{ipc: ipc}
		if n, _, _, _ := f.Frame(hdr[:7]); n != 0 {
			t.Fatalf("a part of the header: %d", n)
		}
		if n, body, up, err := f.Frame(hdr); n != 8 || body != 0 || !up || err != nil {
			t.Fatalf("the header: %d %d %v %v", n, body, up, err)
		}
		msg := binary.BigEndian.AppendUint64(nil, 1<<40)
		want := 8
		if ipc {
			msg, want = append([]byte{1}, msg...), 9
		}
		if n, _, _, _ := f.Frame(msg[:want-1]); n != 0 {
			t.Errorf("ipc %v: a part of a size: %d", ipc, n)
		}
		if n, body, up, err := f.Frame(msg); n != want || body != 1<<40 || up || err != nil {
			t.Errorf("ipc %v: %d %d %v %v", ipc, n, body, up, err)
		}
		bad := binary.BigEndian.AppendUint64(nil, 1<<63)
		if ipc {
			bad = append([]byte{1}, bad...)
		}
		if _, _, _, err := f.Frame(bad); err == nil {
			t.Errorf("ipc %v: a size with the sign bit passed", ipc)
		}
	}
}
