package httppush_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/httppush"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// taken returns an address that a foreign listener holds until the test
// ends, and a function that frees it.
func taken(t *testing.T) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), func() { ln.Close() }
}

func newManager(t *testing.T) *connection.Manager {
	reg := &registry.Registry{}
	reg.Register(httppush.Type, httppush.Connector{})
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{
		Registry: reg, Logger: slog.New(slog.DiscardHandler), MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func post(t *testing.T, method, url, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// pushing sends a request in the background, as a client that waits for
// its answer while the rule takes it; the function returned waits for
// the status.
func pushing(t *testing.T, method, url, body string) func() int {
	t.Helper()
	got := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- -1
			return
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		got <- res.StatusCode
	}()
	return func() int {
		t.Helper()
		select {
		case code := <-got:
			return code
		case <-time.After(10 * time.Second):
			t.Fatal("no answer within 10 s")
			return 0
		}
	}
}

func take(t *testing.T, ch <-chan httppush.Message) httppush.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
		return httppush.Message{}
	}
}

func TestEndpoints(t *testing.T) {
	ctx := context.Background()
	m := newManager(t)
	if _, err := m.Create(ctx, connection.Spec{ID: "push", Type: httppush.Type, Props: map[string]any{"addr": "127.0.0.1:0", "endpoint": "/in"}}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "push", connection.StateConnected, 5*time.Second)
	r1, err := httppush.ReceiverOf(m.Attach(ctx, "push", "rule1/source"))
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := httppush.ReceiverOf(m.Attach(ctx, "push", "rule2/source"))
	r3, _ := httppush.ReceiverOf(m.Attach(ctx, "push", "rule3/source"))
	a1, _ := r1.Receive("", "") // the connection's /in, POST
	a2, _ := r2.Receive("/in", "POST")
	b3, _ := r3.Receive("/orders", "PUT")
	base := "http://" + r1.Addr()

	// Both refs on /in get each request; /orders is routed apart.
	answer := pushing(t, "POST", base+"/in", `{"t":1}`)
	if m1, m2 := take(t, a1), take(t, a2); string(m1.Body) != `{"t":1}` || string(m2.Body) != `{"t":1}` {
		t.Errorf("bodies %q %q", m1.Body, m2.Body)
	}
	if code := answer(); code != 200 {
		t.Fatalf("POST /in: %d", code)
	}
	answer = pushing(t, "PUT", base+"/orders", `o`)
	if msg := take(t, b3); string(msg.Body) != "o" || msg.Method != "PUT" {
		t.Errorf("orders got %+v", msg)
	}
	if code := answer(); code != 200 {
		t.Fatalf("PUT /orders: %d", code)
	}
	if code := post(t, "POST", base+"/orders", `o`); code != 405 {
		t.Errorf("POST to a PUT endpoint: %d, want 405", code)
	}
	if code := post(t, "POST", base+"/nope", `x`); code != 404 {
		t.Errorf("unknown endpoint: %d, want 404", code)
	}
	// rule1 leaves: /in still serves rule2, rule1's channel gets nothing
	// more, and its Receiver is done.
	m.Detach("push", "rule1/source")
	answer = pushing(t, "POST", base+"/in", `two`)
	if msg := take(t, a2); string(msg.Body) != "two" {
		t.Errorf("rule2 got %q", msg.Body)
	}
	if code := answer(); code != 200 {
		t.Fatalf("POST /in after a detach: %d", code)
	}
	select {
	case msg := <-a1:
		t.Errorf("a released receiver got %q", msg.Body)
	default:
	}
	if _, err := r1.Receive("/else", "POST"); !errors.Is(err, connector.ErrDetached) {
		t.Errorf("Receive after release: %v, want ErrDetached", err)
	}
	// The typed Attach accepts its own type.
	if r4, err := httppush.Attach(ctx, m, "push", "rule4/source"); err != nil || r4.Addr() != r1.Addr() {
		t.Errorf("typed Attach: %v", err)
	}
	m.Detach("push", "rule4/source")
	// The last ref of /orders leaves: its route goes.
	m.Detach("push", "rule3/source")
	if code := post(t, "PUT", base+"/orders", `x`); code != 404 {
		t.Errorf("/orders after its last ref left: %d, want 404", code)
	}
	m.Detach("push", "rule2/source")
	if code := post(t, "POST", base+"/in", `x`); code != 404 {
		t.Errorf("/in after its last ref left: %d, want 404", code)
	}
}

func TestAddressTaken(t *testing.T) {
	addr, _ := taken(t)
	m := newManager(t)
	if _, err := m.Create(context.Background(), connection.Spec{ID: "push", Type: httppush.Type, Props: map[string]any{"addr": addr}}); err != nil {
		t.Fatal(err)
	}
	in := connectortest.WaitState(t, m, "push", connection.StateDisconnected, 5*time.Second)
	if !in.Permanent || !strings.Contains(in.Err, "another program listens on "+addr) {
		t.Errorf("status %+v", in.Status)
	}
}

func TestChecks(t *testing.T) {
	reg := &registry.Registry{}
	reg.Register(httppush.Type, httppush.Connector{})
	c := check.New(&check.Options{Registry: reg})
	ctx := context.Background()
	addr, _ := taken(t)
	if _, err := c.Source(ctx, check.Request{Type: httppush.Type, Props: map[string]any{"addr": addr}}); !errors.Is(err, check.ErrFailed) {
		t.Errorf("source check on a foreign address: %v", err)
	}
	free, release := taken(t)
	release()
	if _, err := c.Source(ctx, check.Request{Type: httppush.Type, Props: map[string]any{"addr": free}}); err != nil {
		t.Errorf("source check on a free address: %v", err)
	}
	// Ours: a connection serves it.
	m := newManager(t)
	if _, err := m.Create(ctx, connection.Spec{ID: "push", Type: httppush.Type, Props: map[string]any{"addr": free}}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "push", connection.StateConnected, 5*time.Second)
	if _, err := c.Source(ctx, check.Request{Type: httppush.Type, Props: map[string]any{"addr": free}}); err != nil {
		t.Errorf("source check on our own address: %v", err)
	}
	_, err := c.Sink(ctx, check.Request{Type: httppush.Type, Props: map[string]any{"addr": free}})
	var ce *check.Error
	if !errors.As(err, &ce) || !errors.Is(err, check.ErrUnsupported) || !strings.Contains(ce.Message, "no sink") {
		t.Errorf("sink check: %v", err)
	}
}

// TestHTTPS serves pushes over TLS with a certificate from files.
func TestHTTPS(t *testing.T) {
	// httptest's own localhost certificate, written out as PEM files.
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	pair := ts.TLS.Certificates[0]
	client := ts.Client()
	ts.Close()
	dir := t.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(pair.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pair.Certificate[0]}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)

	ctx := context.Background()
	m := newManager(t)
	if _, err := m.Create(ctx, connection.Spec{ID: "push", Type: httppush.Type, Props: map[string]any{
		"addr": "127.0.0.1:0", "certificationPath": cert, "privateKeyPath": key}}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "push", connection.StateConnected, 5*time.Second)
	r, _ := httppush.ReceiverOf(m.Attach(ctx, "push", "rule1/source"))
	defer m.Detach("push", "rule1/source")
	msgs, _ := r.Receive("/secure", "POST")
	go func() {
		select {
		case msg := <-msgs:
			if string(msg.Body) != `{"tls":true}` {
				t.Errorf("got %q", msg.Body)
			}
		case <-time.After(5 * time.Second):
		}
	}()
	res, err := client.Post("https://"+r.Addr()+"/secure", "application/json", strings.NewReader(`{"tls":true}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("HTTPS push: %d", res.StatusCode)
	}
	// Plain HTTP to the TLS listener is refused.
	if res, err := http.Post("http://"+r.Addr()+"/secure", "text/plain", strings.NewReader("x")); err == nil {
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Error("plain HTTP was accepted by the TLS listener")
		}
	}
}

// TestListenPolicy: a listener binds only what the listen policy allows:
// by default no privileged port; with a list of networks, only those. A
// refused addr is a 400 naming it, at create and at check.
func TestListenPolicy(t *testing.T) {
	ctx := context.Background()
	m := newManager(t) // the default policy
	_, err := m.Create(ctx, connection.Spec{ID: "p", Type: httppush.Type, Props: map[string]any{"addr": "127.0.0.1:80"}})
	var ce *connection.Error
	if !errors.As(err, &ce) || ce.Code != connection.CodeInvalidArgument || len(ce.Fields) == 0 || ce.Fields[0].Field != "addr" {
		t.Errorf("a privileged port: %v, want invalid_argument naming addr", err)
	}
	reg := &registry.Registry{}
	reg.Register(httppush.Type, httppush.Connector{})
	pol := &connector.Policy{Listen: &connector.ListenPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, MinPort: 1024}}
	m2, err := connection.New(ctx, memory.New(), &connection.Options{Registry: reg, Policy: pol, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if _, err := m2.Create(ctx, connection.Spec{ID: "all", Type: httppush.Type, Props: map[string]any{"addr": ":10099"}}); !errors.Is(err, connection.ErrInvalidArgument) {
		t.Errorf("all addresses under a policy of loopback only: %v", err)
	}
	if _, err := m2.Create(ctx, connection.Spec{ID: "lo", Type: httppush.Type, Props: map[string]any{"addr": "127.0.0.1:0"}}); err != nil {
		t.Errorf("loopback under a policy of loopback: %v", err)
	}
	c := check.New(&check.Options{Registry: reg})
	if _, err := c.Source(ctx, check.Request{Type: httppush.Type, Props: map[string]any{"addr": "127.0.0.1:80"}}); !errors.Is(err, check.ErrDenied) {
		t.Errorf("a check of a privileged port: %v, want ErrDenied", err)
	}
}

// TestLastActivity: a pushed request marks the connection active.
func TestLastActivity(t *testing.T) {
	ctx := context.Background()
	m := newManager(t)
	if _, err := m.Create(ctx, connection.Spec{ID: "push", Type: httppush.Type, Props: map[string]any{"addr": "127.0.0.1:0", "endpoint": "/in"}}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "push", connection.StateConnected, 5*time.Second)
	r, err := httppush.Attach(ctx, m, "push", "rule1/source")
	if err != nil {
		t.Fatal(err)
	}
	in, err := r.Receive("", "")
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := m.Get("push"); !info.LastActivityAt.IsZero() {
		t.Fatalf("LastActivityAt %v before any request", info.LastActivityAt)
	}
	answer := pushing(t, "POST", "http://"+r.Addr()+"/in", `{"t":1}`)
	take(t, in)
	if code := answer(); code != 200 {
		t.Fatalf("POST /in: %d", code)
	}
	connectortest.WaitActive(t, m, "push")
}
