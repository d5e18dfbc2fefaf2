// Package check runs connectivity checks of source and sink
// configurations: can a source or sink with these props reach its peer?
//
// A check is bounded by a timeout and by the caller's context, runs with
// its own client identity (it never disturbs a live session), and leaves
// nothing open. At most MaxInFlight checks run at once; past that a check
// fails at once with ErrBusy.
package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/secret"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/registry"
)

// Kinds of failure; an *Error matches exactly one with errors.Is.
var (
	ErrInvalid     = errors.New("invalid configuration")
	ErrUnknownType = errors.New("unknown type")
	ErrUnsupported = errors.New("check not supported")
	ErrBusy        = errors.New("too many checks in flight")
	ErrFailed      = errors.New("check failed")
	ErrTimeout     = errors.New("check timed out")
	ErrDenied      = errors.New("dial denied by the check dial policy")
)

// Error is a failed check.
type Error struct {
	// Kind is one of the Err values above.
	Kind error
	// Reason is a connector.Reason* value for ErrFailed and ErrTimeout.
	Reason string
	// Message says what failed and why, with secrets masked.
	Message string
	// Fields lists the invalid props, for ErrInvalid.
	Fields connector.FieldErrors
}

func (e *Error) Error() string { return e.Message }

// Is reports whether target is e's Kind, or the connection sentinel of
// its code.
func (e *Error) Is(target error) bool {
	return e.Kind == target || errors.Is(&connection.Error{Code: e.ErrorCode()}, target)
}

// ErrorCode implements connection.Coded: the one vocabulary of errors.
func (e *Error) ErrorCode() connection.Code {
	switch e.Kind {
	case ErrInvalid, ErrUnsupported, ErrDenied:
		return connection.CodeInvalidArgument
	case ErrUnknownType:
		return connection.CodeNotFound
	case ErrBusy:
		return connection.CodeResourceExhausted
	case ErrTimeout:
		return connection.CodeDeadlineExceeded
	}
	return connection.CodeUnavailable
}

// Options configure a Checker. A nil *Options means all defaults.
type Options struct {
	// Registry holds the types; nil means registry.Default.
	Registry *registry.Registry
	// Timeout bounds one check; default 5s.
	Timeout time.Duration
	// MaxInFlight caps the checks running at once; default 8.
	MaxInFlight int
	// MaxPropsBytes caps the props of one check, as JSON; default 64 KiB,
	// as a connection's.
	MaxPropsBytes int
	// Policy bounds what checks may do on the host: the addresses they
	// dial (enforced on every socket a check opens), the addresses they
	// may find free to listen on, the files they may open (SQLite). Give
	// it the Manager's (httpapi does so by default). nil means
	// connector.DefaultListenPolicy alone.
	Policy *connector.Policy
	// DialPolicy, if Policy is nil, is a Policy of dial limits alone: for
	// example deny loopback and link-local addresses in production.
	DialPolicy *connector.DialPolicy
}

// Checker runs checks. It is safe for concurrent use.
type Checker struct {
	reg      *registry.Registry
	timeout  time.Duration
	slots    chan struct{}
	policy   *connector.Policy
	maxProps int
}

// New returns a Checker.
func New(opts *Options) *Checker {
	if opts == nil {
		opts = &Options{}
	}
	c := &Checker{reg: opts.Registry, timeout: opts.Timeout, policy: opts.Policy, maxProps: opts.MaxPropsBytes}
	if c.maxProps <= 0 {
		c.maxProps = 64 << 10
	}
	if c.policy == nil {
		c.policy = &connector.Policy{Dial: opts.DialPolicy, Listen: connector.DefaultListenPolicy}
	}
	if c.reg == nil {
		c.reg = registry.Default
	}
	if c.timeout <= 0 {
		c.timeout = 5 * time.Second
	}
	n := opts.MaxInFlight
	if n <= 0 {
		n = 8
	}
	c.slots = make(chan struct{}, n)
	return c
}

// MaxPropsBytes returns the most bytes of JSON the props of one check
// may have (Options.MaxPropsBytes).
func (c *Checker) MaxPropsBytes() int { return c.maxProps }

// Timeout returns the bound of one check.
func (c *Checker) Timeout() time.Duration { return c.timeout }

// Request is one check.
type Request struct {
	// Type is the connection type, such as "mqtt".
	Type string
	// Props are the source's or sink's flat props.
	Props map[string]any
	// Base, if not nil, holds the props of a stored connection (secrets in
	// clear) that Props are laid over; a secret in Props that is
	// secret.Mask keeps Base's value. A secret of Base is used only while
	// the endpoint props (server, host, port, ...) are Base's: otherwise
	// the check fails with ErrInvalid naming the secret, and dials nothing.
	Base map[string]any
}

// Result is what a check did: how long it took and its steps, failed or
// not (the last failed step says where).
type Result struct {
	Took  time.Duration
	Steps []connector.Step
}

// Source checks a source configuration.
func (c *Checker) Source(ctx context.Context, r Request) (Result, error) {
	return c.run(ctx, r, "source", func(t connector.Type) (func(context.Context, map[string]any) error, bool) {
		sc, ok := t.(connector.SourceChecker)
		if !ok {
			return nil, false
		}
		return sc.CheckSource, true
	})
}

// Sink checks a sink configuration.
func (c *Checker) Sink(ctx context.Context, r Request) (Result, error) {
	return c.run(ctx, r, "sink", func(t connector.Type) (func(context.Context, map[string]any) error, bool) {
		sc, ok := t.(connector.SinkChecker)
		if !ok {
			return nil, false
		}
		return sc.CheckSink, true
	})
}

func (c *Checker) run(ctx context.Context, r Request, side string, pick func(connector.Type) (func(context.Context, map[string]any) error, bool)) (Result, error) {
	t, ok := c.reg.Lookup(r.Type)
	if !ok {
		return Result{}, &Error{Kind: ErrUnknownType, Message: fmt.Sprintf("unknown type %q; the registered types are %v", connector.Short(r.Type), c.reg.Names())}
	}
	fn, ok := pick(t)
	if !ok {
		return Result{}, &Error{Kind: ErrUnsupported, Message: fmt.Sprintf("type %q has no %s check: it has no %s side, or cannot be checked", r.Type, side, side)}
	}
	if b, err := json.Marshal(r.Props); err != nil || len(b) > c.maxProps {
		msg := fmt.Sprintf("%d bytes of JSON; give at most %d", len(b), c.maxProps)
		if err != nil {
			msg = "not encodable as JSON"
		}
		return Result{}, &Error{Kind: ErrInvalid, Fields: connector.FieldErrors{{Field: "props", Message: msg}}, Message: "invalid configuration: props: " + msg}
	}
	schema := t.Schema()
	// Secrets by their place, whatever their JSON type: strings from here.
	props, err := secret.Normalize(schema, r.Props)
	if err != nil {
		return Result{}, classify(err, ctx, c.timeout, secret.Quoter(schema, r.Props))
	}
	r.Props = props
	if r.Base != nil {
		if r.Base, err = secret.Normalize(schema, r.Base); err != nil {
			r.Base = secret.Strip(schema, r.Base)
		}
		// The request's own props first: their errors quote the request
		// alone, masked by its own secrets only.
		if err := schema.DecodeGiven(r.Props); err != nil {
			return Result{}, classify(err, ctx, c.timeout, secret.Quoter(schema, r.Props))
		}
		if props, err = secret.Overlay(schema, r.Base, r.Props); err != nil {
			return Result{}, classify(err, ctx, c.timeout, secret.Sanitizer(schema, r.Base))
		}
	}

	// Secret references are read as the connection would read them.
	resolved, refs, rerr := secret.Resolve(schema, props, c.policy)
	if rerr != nil {
		return Result{}, classify(rerr, ctx, c.timeout, secret.Sanitizer(schema, props))
	}
	props = resolved
	select {
	case c.slots <- struct{}{}:
	default:
		return Result{}, &Error{Kind: ErrBusy, Message: fmt.Sprintf("%d checks are running already; retry in a moment", cap(c.slots))}
	}
	steps := &connector.Steps{}
	ctx, cancel := context.WithTimeout(connector.WithSteps(connector.WithPolicy(ctx, c.policy.Bound(refs)), steps), c.timeout)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		// The slot is freed when the connector returns, even after we
		// stopped waiting: a connector that ignores its context cannot pile
		// up goroutines past the cap.
		defer func() { <-c.slots }()
		defer func() {
			// A driver that a hostile peer drove into a panic fails the
			// check, not the process.
			if p := recover(); p != nil {
				done <- fmt.Errorf("the %s check panicked: %v", r.Type, p)
			}
		}()
		done <- fn(ctx, props)
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		// Give a connector that honours ctx a moment to say why.
		select {
		case err = <-done:
		case <-time.After(100 * time.Millisecond):
			err = ctx.Err()
		}
	}
	res := Result{Took: time.Since(start), Steps: steps.List()}
	// Stored secrets under the props: the answer names what it quotes.
	scrub := secret.Quoter(schema, props)
	if r.Base != nil {
		scrub = secret.Sanitizer(schema, props)
	}
	for i := range res.Steps {
		res.Steps[i].Error = scrub(res.Steps[i].Error)
	}
	if err == nil {
		if len(res.Steps) == 0 {
			res.Steps = []connector.Step{{Name: "check", OK: true, Ms: res.Took.Milliseconds()}}
		}
		return res, nil
	}
	err = classify(err, ctx, c.timeout, scrub)
	if n := len(res.Steps); n == 0 || res.Steps[n-1].OK {
		// The failure came after the last step a connector recorded.
		res.Steps = append(res.Steps, connector.Step{Name: "check", Ms: res.Took.Milliseconds(), Error: err.Error()})
	}
	return res, err
}

func classify(err error, ctx context.Context, timeout time.Duration, scrub func(string) string) error {
	var fe connector.FieldErrors
	if errors.As(err, &fe) {
		scrubbed := make(connector.FieldErrors, len(fe))
		parts := ""
		for i, f := range fe {
			scrubbed[i] = connector.FieldError{Field: f.Field, Message: scrub(f.Message)}
			if i > 0 {
				parts += "; "
			}
			parts += scrubbed[i].Error()
		}
		return &Error{Kind: ErrInvalid, Fields: scrubbed, Message: "invalid configuration: " + parts}
	}
	if errors.Is(err, connector.ErrNotCheckable) {
		return &Error{Kind: ErrUnsupported, Message: scrub(err.Error())}
	}
	if errors.Is(err, connector.ErrDialDenied) || errors.Is(err, connector.ErrListenDenied) || errors.Is(err, connector.ErrFileDenied) {
		return &Error{Kind: ErrDenied, Reason: "denied", Message: scrub(err.Error())}
	}
	var ce *connector.CheckError
	reason := connector.ReasonUnreachable
	if errors.As(err, &ce) {
		reason = ce.Reason
	}
	if reason == connector.ReasonTimeout || errors.Is(err, context.DeadlineExceeded) ||
		(ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded)) {
		return &Error{Kind: ErrTimeout, Reason: connector.ReasonTimeout,
			Message: scrub(fmt.Sprintf("no answer within %v: %v", timeout, err))}
	}
	return &Error{Kind: ErrFailed, Reason: reason, Message: scrub(err.Error())}
}
