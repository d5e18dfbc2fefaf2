package nng_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/pair"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/internal/hostiletest"
	"github.com/connkit/connkit/connector/nng"
)

// TestHostilePeerBudget: a peer that completes the SP handshake, then
// claims a message of 2^40 bytes (mangos would make a buffer of it): the
// pipe closes before a byte of it is allocated, the status names
// maxMessageBytes, and mangos dials again.
func TestHostilePeerBudget(t *testing.T) {
	hdr := []byte{0, 'S', 'P', 0, byte(pair.Self >> 8), byte(pair.Self), 0, 0}
	p := hostiletest.Listen(t, func(c net.Conn) {
		var theirs [8]byte
		if _, err := io.ReadFull(c, theirs[:]); err != nil {
			return
		}
		if _, err := c.Write(hdr); err != nil {
			return
		}
		c.Write(binary.BigEndian.AppendUint64(nil, 1<<40))
		c.Write(make([]byte, 1024))
		hostiletest.Hold(c)
	})
	m := newManager(t)
	n := hostiletest.Allocated(func() {
		if _, err := m.Create(context.Background(), connection.Spec{ID: "bus", Type: nng.Type, Props: map[string]any{"url": "tcp://" + p.Addr()}}); err != nil {
			t.Fatal(err)
		}
		connectortest.Eventually(t, "the pipe closed, naming maxMessageBytes", func() bool {
			h, _ := m.History("bus")
			for _, s := range h {
				if strings.Contains(s.Err, "1099511627776-byte nng message, over maxMessageBytes (1048576)") {
					return true
				}
			}
			return false
		})
	})
	// The probe's and mangos' own dials, each of which the peer answered.
	dials := uint64(p.Accepted())
	t.Logf("%d dials allocated %d bytes, %d each", dials, n, n/dials)
	if n/dials > hostiletest.Budget {
		t.Errorf("a dial allocated %d bytes, over %d", n/dials, hostiletest.Budget)
	}
}

// TestMaxMessageBytes: over TCP and IPC, a message of exactly
// maxMessageBytes arrives; one of a byte more closes the pipe, naming
// maxMessageBytes, and the socket is back and works.
func TestMaxMessageBytes(t *testing.T) {
	const limit = 2000
	dir, err := os.MkdirTemp("", "ck")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for _, url := range []string{"tcp://" + freeAddr(t), "ipc://" + filepath.Join(dir, "l.ipc")} {
		t.Run(url[:3], func(t *testing.T) {
			p := peer(t, url)
			m := newManager(t)
			if _, err := m.Create(context.Background(), connection.Spec{ID: "bus", Type: nng.Type, Props: map[string]any{"url": url, "maxMessageBytes": limit}}); err != nil {
				t.Fatal(err)
			}
			connectortest.WaitState(t, m, "bus", connection.StateConnected, 10*time.Second)
			s, err := nng.Socket(m.Attach(context.Background(), "bus", "r"))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Detach("bus", "r")
			if v, err := s.GetOption(mangos.OptionMaxRecvSize); err != nil || v != limit {
				t.Errorf("the socket's OptionMaxRecvSize: %v %v, want %d", v, err, limit)
			}
			at := strings.Repeat("a", limit)
			if err := p.Send([]byte(at)); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, s); got != at {
				t.Fatalf("got %d bytes, want the %d at the limit", len(got), limit)
			}
			if err := p.Send([]byte(at + "b")); err != nil {
				t.Fatal(err)
			}
			connectortest.Eventually(t, "the pipe closed, naming maxMessageBytes", func() bool {
				h, _ := m.History("bus")
				for _, st := range h {
					if strings.Contains(st.Err, fmt.Sprintf("over maxMessageBytes (%d)", limit)) {
						return true
					}
				}
				return false
			})
			connectortest.WaitState(t, m, "bus", connection.StateConnected, 10*time.Second)
			again := strings.Repeat("c", limit)
			connectortest.Eventually(t, "a message after the redial", func() bool {
				return p.Send([]byte(again)) == nil
			})
			if got := recv(t, s); got != again {
				t.Fatalf("after the redial: got %d bytes", len(got))
			}
		})
	}
}
