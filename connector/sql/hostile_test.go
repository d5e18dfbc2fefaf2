package sql_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/internal/hostiletest"
	"github.com/connkit/connkit/connector/sql"
)

// The capabilities of the fake servers: protocol 41, secure connection,
// plugin auth, connect with a database; and TLS.
const (
	baseCaps = 0x0200 | 0x8000 | 0x80000 | 0x0008
	sslCap   = 0x0800
)

// greeting is a server's handshake v10 offering caps and
// mysql_native_password.
func greeting(caps uint32) []byte {
	hs := []byte{10}
	hs = append(hs, "5.7.0-fake\x00"...)
	hs = binary.LittleEndian.AppendUint32(hs, 1)
	hs = append(hs, "abcdefgh"...)
	hs = append(hs, 0)
	hs = binary.LittleEndian.AppendUint16(hs, uint16(caps))
	hs = append(hs, 33)
	hs = binary.LittleEndian.AppendUint16(hs, 2)
	hs = binary.LittleEndian.AppendUint16(hs, uint16(caps>>16))
	hs = append(hs, 21)
	hs = append(hs, make([]byte, 10)...)
	hs = append(hs, "ijklmnopqrst\x00"...)
	hs = append(hs, "mysql_native_password\x00"...)
	return hs
}

// hugeHeader is a packet header claiming 16 MiB - 1, the most a MySQL
// packet can: the driver makes a buffer of it before reading it.
func hugeHeader(seq byte) []byte { return []byte{0xff, 0xff, 0xff, seq} }

func selfSigned(t *testing.T) (tls.Certificate, []byte, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// tlsLogin is what a TLS fake saw of the client: the SSL request's
// sequence number, length and capabilities, and the login's number.
type tlsLogin struct {
	mu                 sync.Mutex
	reqSeq, reqLen     int
	reqCaps            uint32
	loginSeq, loginCap int
	logins             int
}

// tlsFake greets offering TLS, takes the SSL request, makes the TLS
// handshake and reads the login over it; then answers with reply, over
// TLS.
func tlsFake(t *testing.T, cert tls.Certificate, seen *tlsLogin, reply func(c net.Conn)) *hostiletest.Peer {
	return hostiletest.Listen(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if writePacket(c, 0, greeting(baseCaps|sslCap)) != nil {
			return
		}
		seq, req, err := readPacket(c)
		if err != nil || len(req) < 4 {
			return
		}
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		if tc.Handshake() != nil {
			return
		}
		lseq, login, err := readPacket(tc)
		if err != nil || len(login) < 4 {
			return
		}
		seen.mu.Lock()
		seen.reqSeq, seen.reqLen, seen.reqCaps = int(seq), len(req), binary.LittleEndian.Uint32(req)
		seen.loginSeq, seen.loginCap = int(lseq), int(binary.LittleEndian.Uint32(login)&sslCap)
		seen.logins++
		seen.mu.Unlock()
		reply(tc)
	})
}

// hostile dials the server at addr by a check and by the Manager, and
// wants each to fail naming the handshake budget, having allocated far
// less than the server claimed.
func hostile(t *testing.T, url string, accepted func() int) {
	var err error
	n := hostiletest.Allocated(func() {
		_, err = checker().Sink(context.Background(), check.Request{Type: sql.Type, Props: map[string]any{"url": url, "table": "t"}})
	})
	t.Logf("a check allocated %d bytes: %v", n, err)
	if err == nil || !strings.Contains(err.Error(), "HandshakeBudget") {
		t.Errorf("check: %v, want an error naming the handshake budget", err)
	}
	if n > hostiletest.Budget {
		t.Errorf("a check allocated %d bytes, over %d", n, hostiletest.Budget)
	}
	m := newManager(t)
	before := accepted()
	n = hostiletest.Allocated(func() {
		if _, err := m.Create(context.Background(), connection.Spec{ID: "db", Type: sql.Type, Props: map[string]any{"url": url}}); err != nil {
			t.Fatal(err)
		}
		connectortest.Eventually(t, "an error naming the handshake budget", func() bool {
			in, _ := m.Get("db")
			return strings.Contains(in.Err, "HandshakeBudget") && accepted() > before
		})
	})
	dials := uint64(accepted() - before)
	t.Logf("the Manager's %d dials allocated %d bytes, %d each", dials, n, n/dials)
	if n/dials > hostiletest.Budget {
		t.Errorf("a dial allocated %d bytes, over %d", n/dials, hostiletest.Budget)
	}
}

// TestHostileServer: a server whose greeting claims 16 MiB, one whose
// answer to the login does, and one that does inside TLS: no dial
// allocates a buffer of it.
func TestHostileServer(t *testing.T) {
	t.Run("greeting", func(t *testing.T) {
		p := hostiletest.Listen(t, func(c net.Conn) {
			c.Write(append(hugeHeader(0), greeting(baseCaps)...))
			hostiletest.Hold(c)
		})
		hostile(t, "mysql://u:Fake-pw-9@"+p.Addr()+"/db", p.Accepted)
	})
	t.Run("login", func(t *testing.T) {
		p := hostiletest.Listen(t, func(c net.Conn) {
			if writePacket(c, 0, greeting(baseCaps)) != nil {
				return
			}
			if _, _, err := readPacket(c); err != nil {
				return
			}
			c.Write(append(hugeHeader(2), 0))
			hostiletest.Hold(c)
		})
		hostile(t, "mysql://u:Fake-pw-9@"+p.Addr()+"/db", p.Accepted)
	})
	t.Run("inside TLS", func(t *testing.T) {
		cert, _, _ := selfSigned(t)
		var seen tlsLogin
		p := tlsFake(t, cert, &seen, func(c net.Conn) {
			c.Write(append(hugeHeader(3), 0))
			hostiletest.Hold(c)
		})
		hostile(t, "mysql://u:Fake-pw-9@"+p.Addr()+"/db?tls=skip-verify", p.Accepted)
		seen.mu.Lock()
		defer seen.mu.Unlock()
		if seen.logins == 0 || seen.reqSeq != 1 || seen.reqLen != 32 || seen.reqCaps&sslCap == 0 || seen.loginSeq != 2 || seen.loginCap == 0 {
			t.Errorf("the server saw an SSL request numbered %d of %d bytes, capabilities %#x, and %d logins, the last numbered %d; want an SSL request of 32 bytes numbered 1 and a login numbered 2, both with CLIENT_SSL",
				seen.reqSeq, seen.reqLen, seen.reqCaps, seen.logins, seen.loginSeq)
		}
	})
}

// TestTLSLogin: over TLS made by connkit rather than the driver, a login
// whose packets are numbered one on from the driver's (the SSL request
// came first) connects, and commands after it work.
func TestTLSLogin(t *testing.T) {
	cert, _, _ := selfSigned(t)
	var seen tlsLogin
	p := tlsFake(t, cert, &seen, func(c net.Conn) {
		if writePacket(c, 3, okPacket) != nil {
			return
		}
		for {
			_, cmd, err := readPacket(c)
			if err != nil || len(cmd) == 0 || cmd[0] == 0x01 {
				return
			}
			if writePacket(c, 1, okPacket) != nil {
				return
			}
		}
	})
	url := "mysql://u:Fake-pw-9@" + p.Addr() + "/db?tls=skip-verify"
	if _, err := checker().Source(context.Background(), check.Request{Type: sql.Type, Props: map[string]any{"url": url}}); err != nil {
		t.Errorf("check over TLS: %v", err)
	}
	m := newManager(t)
	if _, err := m.Create(context.Background(), connection.Spec{ID: "db", Type: sql.Type, Props: map[string]any{"url": url}}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "db", connection.StateConnected, 5*time.Second)
	db, err := sql.DB(m.Attach(context.Background(), "db", "r"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Detach("db", "r")
	for range 3 {
		if err := db.PingContext(context.Background()); err != nil {
			t.Fatalf("a ping over TLS: %v", err)
		}
	}
	// tls=true (verified) refuses the self-signed server; tls=true of a
	// server without TLS fails as the driver's own would.
	if _, err := checker().Source(context.Background(), check.Request{Type: sql.Type, Props: map[string]any{"url": "mysql://u:Fake-pw-9@" + p.Addr() + "/db?tls=true"}}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("tls=true of a self-signed server: %v, want a certificate error", err)
	}
	plain := hostiletest.Listen(t, func(c net.Conn) {
		if writePacket(c, 0, greeting(baseCaps)) != nil {
			return
		}
		if _, _, err := readPacket(c); err != nil {
			return
		}
		writePacket(c, 2, okPacket)
		hostiletest.Hold(c)
	})
	if _, err := checker().Source(context.Background(), check.Request{Type: sql.Type, Props: map[string]any{"url": "mysql://u:Fake-pw-9@" + plain.Addr() + "/db?tls=true"}}); err == nil || !strings.Contains(err.Error(), "does not support TLS") {
		t.Errorf("tls=true of a server without TLS: %v", err)
	}
	if _, err := checker().Source(context.Background(), check.Request{Type: sql.Type, Props: map[string]any{"url": "mysql://u:Fake-pw-9@" + plain.Addr() + "/db?tls=preferred"}}); err != nil {
		t.Errorf("tls=preferred of a server without TLS: %v", err)
	}
}

// TestMariaDBOverTLS: a real MariaDB with TLS, through connkit's own TLS:
// the session is encrypted (Ssl_cipher), for a connection and a check.
func TestMariaDBOverTLS(t *testing.T) {
	_, user, pw := mysqlServer(t)
	_, certPEM, keyPEM := selfSigned(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, certPEM, 0o600)
	os.WriteFile(keyFile, keyPEM, 0o600)
	d := newMariaDB(t, user, pw)
	d.args = []string{"--ssl-cert=" + certFile, "--ssl-key=" + keyFile}
	d.Start()
	m := newManager(t)
	for _, mode := range []string{"skip-verify", "preferred"} {
		url := d.URL() + "?tls=" + mode
		if _, err := checker().Source(context.Background(), check.Request{Type: sql.Type, Props: map[string]any{"url": url}}); err != nil {
			t.Errorf("check, tls=%s: %v", mode, err)
		}
		if _, err := m.Create(context.Background(), connection.Spec{ID: mode, Type: sql.Type, Props: map[string]any{"url": url}}); err != nil {
			t.Fatal(err)
		}
		connectortest.WaitState(t, m, mode, connection.StateConnected, 10*time.Second)
		db, err := sql.DB(m.Attach(context.Background(), mode, "r"))
		if err != nil {
			t.Fatal(err)
		}
		var name, cipher string
		if err := db.QueryRowContext(context.Background(), "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil || cipher == "" {
			t.Errorf("tls=%s: cipher %q, %v: the session is not encrypted", mode, cipher, err)
		}
		m.Detach(mode, "r")
	}
}

// TestMaxMessageBytes: against MariaDB, a row whose packet is exactly
// maxMessageBytes arrives; one a byte larger closes that link, the status
// names maxMessageBytes, and the pool works on.
func TestMaxMessageBytes(t *testing.T) {
	addr, user, pw := mysqlServer(t)
	const limit = 2000
	m := newManager(t)
	url := fmt.Sprintf("mysql://%s:%s@%s/test", user, pw, addr)
	if _, err := m.Create(context.Background(), connection.Spec{ID: "db", Type: sql.Type, Props: map[string]any{"url": url, "maxMessageBytes": limit}}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "db", connection.StateConnected, 10*time.Second)
	db, err := sql.DB(m.Attach(context.Background(), "db", "r"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Detach("db", "r")
	// A text row (no parameters: no prepared statement) of one string:
	// its length in 3 bytes (0xfc and 2), then the string.
	var s string
	if err := db.QueryRowContext(context.Background(), fmt.Sprintf("SELECT REPEAT('a', %d)", limit-3)).Scan(&s); err != nil || len(s) != limit-3 {
		t.Fatalf("a row at the limit: %d bytes, %v", len(s), err)
	}
	before, _ := m.Get("db")
	if err := db.QueryRowContext(context.Background(), fmt.Sprintf("SELECT REPEAT('b', %d)", limit-2)).Scan(&s); err == nil {
		t.Fatal("a row over the limit was read")
	}
	connectortest.Eventually(t, "the status naming maxMessageBytes", func() bool {
		h, _ := m.History("db")
		for _, st := range h {
			if strings.Contains(st.Err, fmt.Sprintf("over maxMessageBytes (%d)", limit)) {
				return true
			}
		}
		return false
	})
	after := connectortest.WaitState(t, m, "db", connection.StateConnected, 10*time.Second)
	if !after.Since.After(before.Since) {
		t.Errorf("no redial: %+v", after.Status)
	}
	if err := db.QueryRowContext(context.Background(), fmt.Sprintf("SELECT REPEAT('c', %d)", limit-3)).Scan(&s); err != nil {
		t.Errorf("after: %v", err)
	}
}

// TestJoinedPacketsBounded: once the link is up, a server that answers a
// command with packets of the largest size, which the driver joins into
// one, is refused when the whole passes maxMessageBytes, not after it
// has made the driver hold all of them.
func TestJoinedPacketsBounded(t *testing.T) {
	const packets = 6
	body := make([]byte, 1<<24-1)
	// Each packet whole, made once: the server allocates nothing while
	// the check is measured.
	var wire [packets][]byte
	for i := range wire {
		wire[i] = append([]byte{0xff, 0xff, 0xff, byte(1 + i)}, body...)
	}
	p := hostiletest.Listen(t, func(c net.Conn) {
		if writePacket(c, 0, greeting(baseCaps)) != nil {
			return
		}
		if _, _, err := readPacket(c); err != nil {
			return
		}
		if writePacket(c, 2, okPacket) != nil {
			return
		}
		if _, _, err := readPacket(c); err != nil {
			return
		}
		for _, w := range wire {
			if _, err := c.Write(w); err != nil {
				return
			}
		}
		hostiletest.Hold(c)
	})
	var err error
	n := hostiletest.Allocated(func() {
		_, err = checker().Sink(context.Background(), check.Request{Type: sql.Type, Props: map[string]any{"url": "mysql://u:Fake-pw-9@" + p.Addr() + "/db", "table": "t"}})
	})
	t.Logf("a check allocated %d bytes: %v", n, err)
	if err == nil || !strings.Contains(err.Error(), "maxMessageBytes") {
		t.Errorf("check: %v, want an error naming maxMessageBytes", err)
	}
	if n > 3*uint64(len(body)) {
		t.Errorf("a check allocated %d bytes for %d joined packets of %d", n, packets, len(body))
	}
}

// TestColumnCountBounded: a server that answers a query with a result
// of 2^40 (or 2^64 - 1) columns, which the driver would make a slice of
// at once, is refused at that packet: the check fails at once, naming
// it, and frees its slot.
func TestColumnCountBounded(t *testing.T) {
	for name, count := range map[string][]byte{"2^40": {0xfe, 0, 0, 0, 0, 0, 1, 0, 0}, "2^64-1": {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		t.Run(name, func(t *testing.T) {
			p := hostiletest.Listen(t, func(c net.Conn) {
				if writePacket(c, 0, greeting(baseCaps)) != nil {
					return
				}
				if _, _, err := readPacket(c); err != nil {
					return
				}
				if writePacket(c, 2, okPacket) != nil {
					return
				}
				for {
					if _, _, err := readPacket(c); err != nil {
						return
					}
					if writePacket(c, 1, count) != nil {
						return
					}
				}
			})
			var err error
			n := hostiletest.Allocated(func() {
				_, err = checker().Sink(context.Background(), check.Request{Type: sql.Type, Props: map[string]any{"url": "mysql://u:Fake-pw-9@" + p.Addr() + "/db", "table": "t"}})
			})
			if err == nil || !strings.Contains(err.Error(), "columns") || n > hostiletest.Budget {
				t.Errorf("check: %v, %d bytes allocated", err, n)
			}
		})
	}
}
