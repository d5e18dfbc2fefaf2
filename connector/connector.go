// Package connector defines what a connection type implements to be managed
// by connkit. Most code should use package connection; this package is for
// the authors of connector types.
//
// # Lifecycle
//
// A [Type] is registered once from init (see package registry). For every
// stored connection the Manager decodes the props against the type's
// [Schema], then calls [Type.Open], which builds a [Conn] without any I/O.
// The Manager then calls [Conn.Connect] from its own goroutine, with a
// deadline, and owns every retry: a Conn dials once per call and never loops.
// When an established link drops, the Conn calls [Events.Lost] and the
// Manager dials again with backoff. [Conn.Close] releases everything and is
// safe after a failed or cancelled Connect.
//
// # What a connection gets from the Manager
//
// Open receives Events: Lost reports a dropped link, Logger is a logger
// that scrubs the connection's secrets (hand it to a driver), Dialer is a
// dialer that enforces the Manager's dial policy, and Policy says where
// listeners may bind and which files may be opened. The context of
// Connect and Ping carries the policy too (Dialer of a context).
//
// # Clients with pools, retries and redials of their own
//
// A client library that keeps a pool, retries commands or redials in the
// background does not fit "dials once per call" as it comes. Wrap it so
// that:
//
//   - every socket it opens comes from Events.Dialer (a pool dials later,
//     with a context of its own: the dialer carries the policy, not the
//     context);
//   - its own retries and warm-up dials are off, so that it dials only
//     when asked, and the Manager owns redials; Connect and a Pinger's
//     Ping make it dial once, under their context;
//   - or, if it must redial by itself, Connect waits until it is up and
//     its loss hook calls Events.Lost;
//   - Close stops every goroutine it started: the suite checks with
//     goleak and counts open files.
//
// examples/customtype wraps github.com/redis/go-redis so, and passes the
// conformance suite (package connectortest).
//
// # Helpers
//
// The built-in connectors use only public helpers, open to any connector:
// TLSFields and LoadTLS for eKuiper's TLS props, ReadFile for a file a
// prop names, Schema.DecodeCheck for a check's own props, As and
// AttachAs for typed accessors, NetReason and CheckFailed for check
// errors; packages fanout (one peer subscription per topic for every
// attach), httpserver (one listener per address) and scope (the life of
// an attach's view).
//
// # Optional interfaces
//
// New capabilities arrive as optional interfaces that the Manager
// type-asserts, so this contract never widens: [Viewer] for a client of
// its own per attach, [Releaser] for per-ref resources such as
// subscriptions, [Pinger] for a cheap liveness probe.
package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Type is a connection type such as mqtt or sql.
type Type interface {
	// Schema describes the props this type accepts. It must return the
	// same value on every call.
	Schema() *Schema
	// Open builds a connection from props that Schema().Decode accepted.
	// It performs no I/O. Further validation that the schema cannot
	// express (a URL scheme, a pair of props that exclude each other) is
	// reported as a FieldErrors.
	Open(p Props, ev Events) (Conn, error)
}

// Conn is one live connection, shared by every user attached to it.
type Conn interface {
	// Connect dials once and returns when the link is up, or with the
	// reason it is not. It must return promptly when ctx is done. Wrap
	// errors that retrying cannot fix (bad credentials) with Permanent.
	Connect(ctx context.Context) error
	// Client returns what the user attached as ref receives: the shared
	// client itself, or a per-ref view of it. It performs no I/O.
	Client(ref string) any
	// Close releases the connection. It is called once, after the last
	// Connect has returned, and must not block on an unreachable peer.
	Close() error
}

// Events is how a Conn tells the Manager about changes it sees on its own,
// and learns what the Manager lets it do. The Manager implements it.
type Events interface {
	// Lost reports that an established link dropped. The Manager marks the
	// connection disconnected with err and dials again with backoff.
	//
	// Lost never blocks, and may be called from any goroutine, any number
	// of times: losses that come before the Manager has acted count as
	// one. A Lost during Connect counts once the link is up: the Manager
	// redials at once (report a link that fails while connecting as
	// Connect's error instead). A Lost after Close is ignored. A Conn that
	// is also a Pinger need not call Lost when a ping fails: the Manager
	// counts a failed Ping as a loss.
	Lost(err error)
	// Logger is where the connection logs, with its id and type: every
	// secret of its props is scrubbed from messages and attributes. Hand
	// it to a driver that logs, rather than letting it write to stderr.
	Logger() *slog.Logger
	// Dialer returns a dialer that enforces the dial policy of Policy.
	// Every socket the connection opens must come from it, or from
	// connector.Dialer of the context of Connect and Ping: a client that
	// dials later by itself, such as a pool, is given this one at Open.
	Dialer() *net.Dialer
	// Policy is what the connection may do on the host: where it may dial
	// and listen, which files it may open. The context of Connect and of
	// Ping carries it too (connector.Dialer honours it); a client that
	// dials later on its own, such as a pool, must be given a dialer of
	// it (PolicyDialer) at Open. May be nil: everything is allowed.
	Policy() *Policy
}

// Releaser is implemented by a Conn that holds resources per ref name,
// such as subscriptions with a per-topic ref count. Several attaches may
// share one ref name (a rule restarting while its old instance stops);
// Release(ref) is called exactly once, when the last of them is released,
// while the connection is still held open for it. It must not block on
// the network for long.
type Releaser interface {
	Release(ref string)
}

// Viewer is implemented by a Conn that hands every attach a client of its
// own: a view of the shared link that one user holds. The Manager calls
// View instead of Conn.Client for each attach, and end exactly once, when
// that attach is released. After end returns, every operation of the view
// fails at once with an error that matches ErrDetached, and the view
// delivers nothing more (no message, no callback).
//
// View performs no I/O and end must not block on the network. Both may be
// called while the Conn is closing or after it closed (an attach that lost
// a race with a delete, or a user that detaches after the Manager closed).
type Viewer interface {
	View(ref string) (client any, end func())
}

// ErrDetached is the error of an operation on a client whose attach was
// released; check with errors.Is. Attach again to use the connection.
var ErrDetached = errors.New("the client was detached from its connection; attach again to use it")

// Attacher attaches users to named connections; *connection.Manager is
// one. The typed Attach functions of the connector packages take an
// Attacher, so that they need not import package connection.
type Attacher interface {
	// AttachIf attaches ref to the connection id, as Attach does, once
	// accept has approved the client it would hand out. If accept returns
	// an error, nothing is recorded and the error names it.
	AttachIf(ctx context.Context, id, ref string, accept func(client any) error) (any, error)
}

// Identifier is implemented by a Type whose connections have an identity
// at their peer that two of them cannot share, such as an MQTT client id
// on one broker (the broker would drop each for the other, for ever).
// Identity returns it for decoded props ("" for none); the Manager
// refuses a second connection with the same identity, naming the first,
// and field names the prop to change. Identities are compared across
// types: every type that speaks MQTT writes a client id on a broker as
// MQTTIdentity does.
type Identifier interface {
	Identity(p Props) (identity, field string)
}

// MQTTIdentity is the identity of an MQTT client id on the broker at
// host:port. The host is written in one form: an IP address as netip
// writes it (an IPv4-mapped one as IPv4), every loopback address and
// "localhost" as loopback, a name in lower case; the port as a number.
// Names are not resolved: two names of one broker are two brokers here.
func MQTTIdentity(host, port, clientID string) string {
	if clientID == "" {
		return ""
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		host = a.Unmap().String()
		if a.IsLoopback() {
			host = "loopback"
		}
	} else if host == "localhost" {
		host = "loopback"
	}
	if n, err := strconv.ParseUint(port, 10, 16); err == nil {
		port = strconv.FormatUint(n, 10)
	}
	return "mqtt://" + net.JoinHostPort(host, port) + "#" + clientID
}

// Peer is implemented by a Conn that dials one TCP address. While the
// address refuses connections, the Manager lets a watcher of its own
// probe it (about once a second, for every connection to it at once) and
// redials as soon as it accepts, instead of waiting out a long backoff.
type Peer interface {
	// PeerAddr returns the host:port dialed, or "" for none.
	PeerAddr() string
}

// Pinger is implemented by a Conn that can probe its link cheaply.
type Pinger interface {
	Ping(ctx context.Context) error
}

// permanent marks an error that retrying will not fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err to say that dialing again will not help until the
// configuration or the peer changes (bad credentials, unknown database).
// The Manager still retries, at its longest interval, and reports the error
// as permanent.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err or any error it wraps was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// SourceChecker is implemented by a Type that can check, without keeping
// anything open, that a source with the flat props p would work: the
// connection props and the source's own (a topic, a table) in one map.
//
// The error says what is wrong, by kind: a FieldErrors for a bad
// configuration; an error wrapping context.DeadlineExceeded when the peer
// did not answer in time; any other error when the peer is unreachable,
// refused the connection or the credentials, or lacks what the source
// needs. A check must honour ctx and use its own client identity, so that
// it never disturbs a live session.
type SourceChecker interface {
	CheckSource(ctx context.Context, p map[string]any) error
}

// SinkChecker is SourceChecker for sinks.
type SinkChecker interface {
	CheckSink(ctx context.Context, p map[string]any) error
}

// ErrNotCheckable is wrapped by a check that cannot reach its peer in the
// way asked (a client that cannot be held to the dial policy, say): the
// check answers that it cannot check, never that the peer is fine.
var ErrNotCheckable = errors.New("cannot be checked")

// Reasons a check fails, stable for programs; the message is for people.
const (
	ReasonRefused      = "refused"      // nothing listens, or the peer closed the connection
	ReasonUnreachable  = "unreachable"  // no route, no such host, a TLS or protocol failure
	ReasonUnauthorized = "unauthorized" // the peer refused the credentials
	ReasonMissing      = "missing"      // the peer lacks what was named: a table, a column, a database
	ReasonTimeout      = "timeout"      // the peer did not answer in time
)

// CheckError is a failed check that says why, by Reason.
type CheckError struct {
	Reason string
	Err    error
}

func (e *CheckError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *CheckError) Unwrap() error { return e.Err }

// Is makes a ReasonTimeout error match context.DeadlineExceeded.
func (e *CheckError) Is(target error) bool {
	return e.Reason == ReasonTimeout && target == context.DeadlineExceeded
}

// CheckFailed returns a CheckError. For ReasonTimeout the error also
// matches context.DeadlineExceeded.
func CheckFailed(reason string, err error) error {
	return &CheckError{Reason: reason, Err: err}
}

// As returns client as a T, for a connector's typed accessor of what
// Attach handed out:
//
//	func Client(client any, err error) (*Client, error) { return connector.As[*Client](client, err) }
//
// An err is returned as it is; a client of another type is an error that
// says so (the ref stays attached: prefer AttachAs).
func As[T any](client any, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	t, ok := client.(T)
	if !ok {
		return zero, fmt.Errorf("the connection's client is a %T, not a %T: the connection is of another type", client, zero)
	}
	return t, nil
}

// AttachAs attaches ref to the connection id of a and returns its client
// as a T. A connection whose client is not a T is refused before anything
// is recorded, so no ref is left behind. It is a connector's typed Attach:
//
//	func Attach(ctx context.Context, a connector.Attacher, id, ref string) (*Client, error) {
//		return connector.AttachAs[*Client](ctx, a, id, ref)
//	}
func AttachAs[T any](ctx context.Context, a Attacher, id, ref string) (T, error) {
	return As[T](a.AttachIf(ctx, id, ref, func(client any) error {
		if _, ok := client.(T); !ok {
			var zero T
			return fmt.Errorf("its client is a %T, not a %T", client, zero)
		}
		return nil
	}))
}

// Activity is implemented by the Events a Manager hands to Type.Open. A
// connection whose link carries messages calls Active each time one is
// sent or received, so that its last activity is reported ("connected
// but nothing flows" shows). It is one atomic store: call it on the hot
// path.
type Activity interface {
	Active()
}

// ActiveFunc returns the Active of ev, or a func that does nothing when ev
// does not implement Activity (a test's Events, say). Call it once at
// Open and keep the func.
func ActiveFunc(ev Events) func() {
	if a, ok := ev.(Activity); ok {
		return a.Active
	}
	return func() {}
}
