package connector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// ErrDialDenied is the error of a dial that a DialPolicy refuses; check
// with errors.Is.
var ErrDialDenied = errors.New("dial denied by policy")

// DialPolicy limits where checks and connections may dial, so that whoever
// may create a connection or run a check cannot use it to probe or reach
// an internal network (SSRF). It is
// enforced when a socket connects, on the address DNS resolved to, so a
// name that resolves somewhere else later gains nothing.
type DialPolicy struct {
	// Allow, if not empty, lists the only networks that may be dialed.
	Allow []netip.Prefix
	// Deny lists networks that are never dialed.
	Deny []netip.Prefix
	// DenyLoopback, DenyLinkLocal and DenyPrivate deny those ranges, IPv4
	// and IPv6 (a Unix socket counts as loopback).
	DenyLoopback, DenyLinkLocal, DenyPrivate bool
	// Ports, if not empty, lists the only ports that may be dialed.
	Ports []uint16
	// Observe, if set, is called with every address a socket is let
	// connect to: for an audit log, or to count the dials a policy saw.
	Observe func(netip.AddrPort)
	// And, if set, must permit an address too: how a connection whose
	// secret references are bound (SecretBinding) is held to the
	// networks they may go to.
	And *DialPolicy
}

// Permit reports whether the policy allows dialing ap.
func (p *DialPolicy) Permit(ap netip.AddrPort) error {
	if p == nil {
		return nil
	}
	a := ap.Addr().Unmap()
	deny := func(why string) error { return fmt.Errorf("%w: %s is %s", ErrDialDenied, ap, why) }
	switch {
	case p.DenyLoopback && a.IsLoopback():
		return deny("a loopback address")
	case p.DenyLinkLocal && (a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast()):
		return deny("a link-local address")
	case p.DenyPrivate && a.IsPrivate():
		return deny("a private address")
	case a.IsUnspecified():
		return deny("unspecified")
	}
	for _, n := range p.Deny {
		if n.Contains(a) {
			return deny("in the denied network " + n.String())
		}
	}
	if len(p.Allow) > 0 && !slices.ContainsFunc(p.Allow, func(n netip.Prefix) bool { return n.Contains(a) }) {
		return deny("not in an allowed network")
	}
	if len(p.Ports) > 0 && !slices.Contains(p.Ports, ap.Port()) {
		return deny(fmt.Sprintf("on port %d, which is not allowed", ap.Port()))
	}
	return p.And.Permit(ap)
}

// Policy is what connkit lets the props of a connection or a check make
// it do on the host: where sockets may connect, where listeners may bind,
// which files may be opened or created. The Manager hands its Policy to
// every connection (Events.Policy, and the context of every Connect and
// Ping); a check.Checker hands its own to every check (the context). A nil
// *Policy, or a nil part of one, allows everything.
type Policy struct {
	Dial   *DialPolicy
	Listen *ListenPolicy
	// Files also bounds the files that secret references (${file:PATH})
	// read.
	Files *FilePolicy
	// Env bounds the variables that secret references (${env:NAME})
	// read; nil means DefaultEnvPolicy, not everything.
	Env *EnvPolicy
	// SecretFiles bounds the files that secret references (${file:PATH})
	// read: only under its Root, never one of its Deny (the server's own
	// database, key, provisioning file), and never a file the process's
	// standard output or error goes to (its log), wherever they are. Nil,
	// or no Root: file references are off.
	SecretFiles *FilePolicy
	// Bind holds secret references to the networks they may be sent to:
	// a connection or check that reads a reference a binding names dials
	// only where the binding allows (and the Dial policy, too). A
	// reference that no binding names goes wherever Dial allows.
	Bind []SecretBinding
}

// SecretBinding holds the secret references whose name starts with Ref,
// as "env:CONNKIT_SECRET_PROD_" or "file:prod/" (a file's path as it lies
// under SecretFiles.Root, after symbolic links), to the networks and
// ports of Dial: a connection that reads one dials only there.
type SecretBinding struct {
	Ref  string
	Dial DialPolicy
}

// Bound returns p with its dial policy narrowed by the bindings of refs
// (the canonical names of the secret references a connection read: env:NAME
// or file:PATH), or p itself if none binds them.
func (p *Policy) Bound(refs []string) *Policy {
	if p == nil || len(p.Bind) == 0 || len(refs) == 0 {
		return p
	}
	d := DialPolicy{}
	if p.Dial != nil {
		d = *p.Dial
	}
	bound := false
	for _, b := range p.Bind {
		if slices.ContainsFunc(refs, func(r string) bool { return strings.HasPrefix(r, b.Ref) }) {
			nd := b.Dial
			nd.And, d.And, bound = d.And, &nd, true
		}
	}
	if !bound {
		return p
	}
	q := *p
	q.Dial = &d
	return &q
}

func (p *Policy) dial() *DialPolicy {
	if p == nil {
		return nil
	}
	return p.Dial
}

// ListenAllowed reports whether a listener may bind addr (host:port).
func (p *Policy) ListenAllowed(addr string) error {
	if p == nil {
		return nil
	}
	return p.Listen.Permit(addr)
}

// File returns the absolute path of the file that a prop names, if the
// policy lets a connection open or create it.
func (p *Policy) File(path string) (string, error) {
	if p == nil {
		return filepath.Abs(path)
	}
	return p.Files.Resolve(path)
}

type policyKey struct{}

// WithPolicy returns ctx carrying p, for the dials, binds and files of a
// check or of a Connect.
func WithPolicy(ctx context.Context, p *Policy) context.Context {
	if p == nil {
		return ctx
	}
	return context.WithValue(ctx, policyKey{}, p)
}

// PolicyFrom returns the policy ctx carries, or nil.
func PolicyFrom(ctx context.Context) *Policy {
	p, _ := ctx.Value(policyKey{}).(*Policy)
	return p
}

// WithDialPolicy returns ctx carrying a Policy of p alone.
func WithDialPolicy(ctx context.Context, p *DialPolicy) context.Context {
	if p == nil {
		return ctx
	}
	return WithPolicy(ctx, &Policy{Dial: p})
}

// DialPolicyFrom returns the dial policy ctx carries, or nil.
func DialPolicyFrom(ctx context.Context) *DialPolicy { return PolicyFrom(ctx).dial() }

// ListenPolicy limits the addresses that listeners (httppush, WebSocket
// server mode) may bind.
type ListenPolicy struct {
	// Allow, if not empty, lists the only networks whose addresses may be
	// bound; the unspecified address (all of them) is allowed only if
	// listed (0.0.0.0/32 or ::/128).
	Allow []netip.Prefix
	// MinPort is the lowest port that may be bound; port 0 (any free one)
	// is always allowed.
	MinPort uint16
}

// DefaultListenPolicy lets listeners bind any address on a port from 1024
// up, as an unprivileged process could: not the host's privileged ports.
var DefaultListenPolicy = &ListenPolicy{MinPort: 1024}

// Permit reports whether addr (host:port, with a literal IP or an empty
// host) may be bound.
func (p *ListenPolicy) Permit(addr string) error {
	if p == nil {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: %q is not host:port", ErrListenDenied, addr)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("%w: port %q is not a number", ErrListenDenied, port)
	}
	if n != 0 && uint16(n) < p.MinPort {
		return fmt.Errorf("%w: port %d is below %d", ErrListenDenied, n, p.MinPort)
	}
	if len(p.Allow) == 0 {
		return nil
	}
	a := netip.IPv4Unspecified()
	if host != "" {
		if a, err = netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%w: %q is not an IP address; listeners bind literal addresses", ErrListenDenied, host)
		}
	}
	if !slices.ContainsFunc(p.Allow, func(n netip.Prefix) bool { return n.Contains(a.Unmap()) }) {
		return fmt.Errorf("%w: %s is not in an allowed network", ErrListenDenied, a)
	}
	return nil
}

// ErrListenDenied is the error of a bind that a ListenPolicy refuses.
var ErrListenDenied = errors.New("listen denied by policy")

// FilePolicy limits the files (SQLite databases) that a connection may
// open or create.
type FilePolicy struct {
	// Root, if set, is the directory every such file must lie in, after
	// symbolic links are followed.
	Root string
	// Deny lists files never opened as a connection's (the store's own);
	// their -wal, -shm and -journal files are denied with them.
	Deny []string
}

// ErrFileDenied is the error of a file that a FilePolicy refuses.
var ErrFileDenied = errors.New("file denied by policy")

// Resolve returns the absolute path of path, with symbolic links followed
// as far as it exists, if the policy allows it.
func (p *FilePolicy) Resolve(path string) (string, error) {
	abs, err := realPath(path)
	if err != nil {
		return "", err
	}
	if p == nil {
		return abs, nil
	}
	if p.Root != "" {
		root, err := realPath(p.Root)
		if err != nil {
			return "", err
		}
		if rel, err := filepath.Rel(root, abs); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return "", fmt.Errorf("%w: %s is outside %s, the directory allowed", ErrFileDenied, path, p.Root)
		}
	}
	fi, _ := os.Stat(abs)
	for _, d := range p.Deny {
		rd, err := realPath(d)
		if err != nil {
			continue
		}
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			df, _ := os.Stat(rd + suffix)
			// By name, or by the file itself: a hard link is no way round.
			if abs == rd+suffix || (fi != nil && df != nil && os.SameFile(fi, df)) {
				return "", fmt.Errorf("%w: %s is not for connections", ErrFileDenied, path)
			}
		}
	}
	return abs, nil
}

// RealPath is the absolute path with the symbolic links of its longest
// existing prefix followed, as FilePolicy.Resolve compares paths.
func RealPath(path string) (string, error) { return realPath(path) }

// realPath is the absolute path with the symbolic links of its longest
// existing prefix followed.
func realPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	rest := ""
	for dir := abs; ; dir = filepath.Dir(dir) {
		if r, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(r, rest), nil
		}
		if dir == filepath.Dir(dir) {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}

// Dialer returns a net.Dialer that enforces the DialPolicy of ctx, if
// any, as each socket connects. Every dial of a check and of a Connect
// goes through one.
func Dialer(ctx context.Context) *net.Dialer { return PolicyDialer(DialPolicyFrom(ctx)) }

// PolicyDialer returns a net.Dialer that enforces p (nil: none) as each
// socket connects, for a client that dials later on its own (a pool).
func PolicyDialer(p *DialPolicy) *net.Dialer {
	if p == nil {
		return &net.Dialer{}
	}
	return &net.Dialer{ControlContext: func(_ context.Context, network, address string, _ syscall.RawConn) error {
		if network == "unix" || network == "unixgram" || network == "unixpacket" {
			for q := p; q != nil; q = q.And {
				if q.DenyLoopback || len(q.Allow) > 0 {
					return fmt.Errorf("%w: %s is a local socket", ErrDialDenied, address)
				}
			}
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot read address %q", ErrDialDenied, address)
		}
		if err := p.Permit(ap); err != nil {
			return err
		}
		if p.Observe != nil {
			p.Observe(ap)
		}
		return nil
	}}
}

// EnvPolicy limits the environment variables that a secret reference
// (${env:NAME}) may read: a user who may write connections could
// otherwise send any of the host's variables to a peer of their choice.
type EnvPolicy struct {
	// Prefixes are the names allowed: a variable is readable if its name
	// starts with one of them. "" allows every variable.
	Prefixes []string
}

// DefaultEnvPolicy allows the variables named CONNKIT_SECRET_*. A Policy
// whose Env is nil has it.
var DefaultEnvPolicy = &EnvPolicy{Prefixes: []string{"CONNKIT_SECRET_"}}

// ErrEnvDenied is the error of a variable that an EnvPolicy refuses.
var ErrEnvDenied = errors.New("environment variable denied by policy")

// EnvAllowed reports whether a secret reference may read the environment
// variable name.
func (p *Policy) EnvAllowed(name string) error {
	e := DefaultEnvPolicy
	if p != nil && p.Env != nil {
		e = p.Env
	}
	for _, pre := range e.Prefixes {
		if strings.HasPrefix(name, pre) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s; the names allowed start with %s", ErrEnvDenied, name, strings.Join(e.Prefixes, " or "))
}
