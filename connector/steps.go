package connector

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Step is one stage of a connectivity check, so that a user sees where a
// check failed: resolve, connect, tls, handshake, auth, table.
type Step struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Ms    int64  `json:"ms"`
	Error string `json:"error,omitempty"`
}

// Steps records the steps of one check. It is safe for concurrent use.
type Steps struct {
	mu    sync.Mutex
	steps []Step
	last  time.Time // when the last step ended, or recording began
}

type stepsKey struct{}

// WithSteps returns a context in which the steps of a check are recorded
// into s.
func WithSteps(ctx context.Context, s *Steps) context.Context {
	s.mu.Lock()
	if s.last.IsZero() {
		s.last = time.Now()
	}
	s.mu.Unlock()
	return context.WithValue(ctx, stepsKey{}, s)
}

// List returns the steps recorded so far, in order.
func (s *Steps) List() []Step {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Step(nil), s.steps...)
}

// StepDone records, if ctx records steps, the step name that began at
// start and ended with err (nil: it passed). A check calls it for the
// stages of its own protocol (a handshake, a login, a table lookup).
func StepDone(ctx context.Context, name string, start time.Time, err error) {
	s, _ := ctx.Value(stepsKey{}).(*Steps)
	if s == nil {
		return
	}
	s.mu.Lock()
	s.add(name, start, err)
	s.mu.Unlock()
}

// add records a step. s.mu must be held.
func (s *Steps) add(name string, start time.Time, err error) {
	now := time.Now()
	st := Step{Name: name, OK: err == nil, Ms: now.Sub(start).Milliseconds()}
	if err != nil {
		st.Error = err.Error()
	}
	s.steps = append(s.steps, st)
	s.last = now
}

// StepNext records, if ctx records steps and none has failed yet, the
// step name from the end of the previous one (or the start of the check)
// until now, ended with err.
func StepNext(ctx context.Context, name string, err error) {
	s, _ := ctx.Value(stepsKey{}).(*Steps)
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.steps); n > 0 && !s.steps[n-1].OK {
		return
	}
	s.add(name, s.last, err)
}

func recording(ctx context.Context) bool {
	s, _ := ctx.Value(stepsKey{}).(*Steps)
	return s != nil
}

// Dial connects to addr through Dialer(ctx) and, if tc is not nil, makes
// a TLS handshake. Within a check (WithSteps) it records the steps
// resolve, connect and tls; elsewhere it dials as Dialer(ctx) does.
func Dial(ctx context.Context, network, addr string, tc *tls.Config) (net.Conn, error) {
	d := Dialer(ctx)
	if !recording(ctx) {
		if tc != nil {
			return (&tls.Dialer{NetDialer: d, Config: tc}).DialContext(ctx, network, addr)
		}
		return d.DialContext(ctx, network, addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	targets := []string{addr}
	if _, perr := netip.ParseAddr(host); perr != nil {
		start := time.Now()
		family := map[string]string{"tcp4": "ip4", "tcp6": "ip6"}[network]
		if family == "" {
			family = "ip"
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, family, host)
		StepDone(ctx, "resolve", start, err)
		if err != nil {
			return nil, err
		}
		targets = targets[:0]
		for _, ip := range ips {
			targets = append(targets, net.JoinHostPort(ip.Unmap().String(), port))
		}
	}
	start := time.Now()
	var nc net.Conn
	for _, t := range targets {
		if nc, err = d.DialContext(ctx, network, t); err == nil {
			break
		}
	}
	StepDone(ctx, "connect", start, err)
	if err != nil || tc == nil {
		return nc, err
	}
	if tc.ServerName == "" {
		tc = tc.Clone()
		tc.ServerName = host
	}
	start = time.Now()
	tconn := tls.Client(nc, tc)
	err = tconn.HandshakeContext(ctx)
	StepDone(ctx, "tls", start, err)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return tconn, nil
}
