package connector_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/connkit/connkit/connector"
)

func TestDialPolicy(t *testing.T) {
	prod := &connector.DialPolicy{DenyLoopback: true, DenyLinkLocal: true, Deny: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}}
	cases := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:1883", false}, {"[::1]:1883", false}, {"[::ffff:127.0.0.1]:80", false},
		{"169.254.169.254:80", false}, {"[fe80::1]:80", false}, {"10.9.1.1:3306", false}, {"0.0.0.0:80", false},
		{"192.0.2.10:1883", true}, {"10.8.1.1:3306", true},
	}
	for _, tc := range cases {
		err := prod.Permit(netip.MustParseAddrPort(tc.addr))
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, connector.ErrDialDenied)) {
			t.Errorf("Permit(%s) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
	ports := &connector.DialPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, Ports: []uint16{1883}}
	if ports.Permit(netip.MustParseAddrPort("192.0.2.1:1883")) != nil || ports.Permit(netip.MustParseAddrPort("192.0.2.1:22")) == nil ||
		ports.Permit(netip.MustParseAddrPort("198.51.100.1:1883")) == nil {
		t.Error("Allow and Ports not both enforced")
	}
	var none *connector.DialPolicy
	if none.Permit(netip.MustParseAddrPort("127.0.0.1:1")) != nil {
		t.Error("a nil policy denies")
	}
}

// TestDialerEnforcesAtConnect: the policy holds on a real dial, after
// name resolution.
func TestDialerEnforcesAtConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx := connector.WithDialPolicy(context.Background(), &connector.DialPolicy{DenyLoopback: true})
	if _, err := connector.Dialer(ctx).DialContext(ctx, "tcp", "localhost:"+netip.MustParseAddrPort(ln.Addr().String()).String()[len("127.0.0.1:"):]); !errors.Is(err, connector.ErrDialDenied) {
		t.Errorf("dial of localhost under DenyLoopback: %v", err)
	}
	if _, err := connector.Dialer(ctx).DialContext(ctx, "unix", "/tmp/x.sock"); !errors.Is(err, connector.ErrDialDenied) {
		t.Errorf("unix socket under DenyLoopback: %v", err)
	}
	c, err := connector.Dialer(context.Background()).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("no policy: %v", err)
	}
	c.Close()
}

// TestTimeoutMatchesDeadline: a check that failed for want of an answer
// matches context.DeadlineExceeded, as its doc says; other reasons do not.
func TestTimeoutMatchesDeadline(t *testing.T) {
	if err := connector.CheckFailed(connector.ReasonTimeout, errors.New("silent peer")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a timeout does not match context.DeadlineExceeded: %v", err)
	}
	if err := connector.CheckFailed(connector.ReasonRefused, errors.New("refused")); errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a refusal matches context.DeadlineExceeded: %v", err)
	}
}

// TestReadFileRefusesWhatIsNoFile: a prop that names a device, a pipe, a
// directory or a big file is refused before anything is read or waited
// for.
func TestReadFileRefusesWhatIsNoFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, make([]byte, connector.MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(small, []byte("pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, says := range map[string]string{
		"/dev/zero": "cannot be used", "/dev/ptmx": "cannot be used", fifo: "cannot be used",
		dir: "cannot be used", big: "cannot be used", filepath.Join(dir, "nope"): "cannot be used",
	} {
		if _, err := connector.ReadFile(path); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("ReadFile(%s): %v, want an error saying %q", path, err, says)
		}
	}
	if b, err := connector.ReadFile(small); err != nil || string(b) != "pem" {
		t.Errorf("ReadFile of a small file: %q %v", b, err)
	}
}

// TestFileRefusalsLookAlike: whether a CA file is missing, unreadable, a
// directory or no PEM, the refusal has the same words: it tells nothing
// of the host's files.
func TestFileRefusalsLookAlike(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "hosts")
	os.WriteFile(notPEM, []byte("127.0.0.1 localhost\n"), 0o600)
	var msgs []string
	for _, path := range []string{filepath.Join(dir, "missing"), notPEM, dir, "/dev/zero"} {
		_, fe := connector.TLSFiles{CA: path}.Load()
		if len(fe) != 1 || fe[0].Field != "rootCaPath" {
			t.Fatalf("%s: %v", path, fe)
		}
		msgs = append(msgs, strings.ReplaceAll(fe[0].Message, path, "PATH"))
	}
	for _, m := range msgs[1:] {
		if m != msgs[0] {
			t.Errorf("refusals differ: %q", msgs)
		}
	}
}

// TestBound: a connection that read a bound reference dials only where
// the binding allows, and where the base policy allows too; one that read
// no bound reference is not narrowed.
func TestBound(t *testing.T) {
	base := &connector.Policy{Dial: &connector.DialPolicy{Deny: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}},
		Bind: []connector.SecretBinding{
			{Ref: "env:CONNKIT_SECRET_PROD_", Dial: connector.DialPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}},
			{Ref: "file:prod/", Dial: connector.DialPolicy{Ports: []uint16{8883}}},
		}}
	at := func(p *connector.Policy, s string) error { return p.Dial.Permit(netip.MustParseAddrPort(s)) }
	if p := base.Bound([]string{"env:CONNKIT_SECRET_DEV"}); p != base {
		t.Error("an unbound reference narrowed the policy")
	}
	p := base.Bound([]string{"env:CONNKIT_SECRET_PROD_PW"})
	for addr, ok := range map[string]bool{"10.1.2.3:1883": true, "192.168.1.1:1883": false, "10.9.1.1:1883": false} {
		if err := at(p, addr); (err == nil) != ok {
			t.Errorf("%s: %v", addr, err)
		}
	}
	p = base.Bound([]string{"env:CONNKIT_SECRET_PROD_PW", "file:prod/ca"})
	for addr, ok := range map[string]bool{"10.1.2.3:8883": true, "10.1.2.3:1883": false, "192.168.1.1:8883": false} {
		if err := at(p, addr); (err == nil) != ok {
			t.Errorf("both bindings, %s: %v", addr, err)
		}
	}
	if at(base, "192.168.1.1:1883") != nil {
		t.Error("Bound changed the base policy")
	}
	if _, err := connector.PolicyDialer(base.Bound([]string{"env:CONNKIT_SECRET_PROD_PW"}).Dial).Dial("unix", "/tmp/x.sock"); err == nil || !errors.Is(err, connector.ErrDialDenied) {
		t.Errorf("a unix socket under an allow-list binding: %v", err)
	}
}
