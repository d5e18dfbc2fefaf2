package connector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
)

// ErrDialDenied is the error of a dial that a DialPolicy refuses; check
// with errors.Is.
var ErrDialDenied = errors.New("dial denied by policy")

// DialPolicy limits where connectivity checks may dial, so that the check
// routes cannot be used to probe an internal network (SSRF). It is
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
	return nil
}

type policyKey struct{}

// WithDialPolicy returns ctx carrying p, for the dials of a check.
func WithDialPolicy(ctx context.Context, p *DialPolicy) context.Context {
	if p == nil {
		return ctx
	}
	return context.WithValue(ctx, policyKey{}, p)
}

// DialPolicyFrom returns the policy ctx carries, or nil.
func DialPolicyFrom(ctx context.Context) *DialPolicy {
	p, _ := ctx.Value(policyKey{}).(*DialPolicy)
	return p
}

// Dialer returns a net.Dialer that enforces the DialPolicy of ctx, if
// any, as each socket connects. Every dial of a check goes through one.
func Dialer(ctx context.Context) *net.Dialer {
	p := DialPolicyFrom(ctx)
	if p == nil {
		return &net.Dialer{}
	}
	return &net.Dialer{ControlContext: func(_ context.Context, network, address string, _ syscall.RawConn) error {
		if network == "unix" || network == "unixgram" || network == "unixpacket" {
			if p.DenyLoopback || len(p.Allow) > 0 {
				return fmt.Errorf("%w: %s is a local socket", ErrDialDenied, address)
			}
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot read address %q", ErrDialDenied, address)
		}
		return p.Permit(ap)
	}}
}
