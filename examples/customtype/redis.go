// Package customtype is a connection type written as a connector of
// another module would be, against connkit's public API only: "acme.redis",
// a Redis server behind a shared github.com/redis/go-redis/v9 client.
// Its tests run the conformance suite against a real redis-server, and
// show that the suite fails a copy of it that does not notice a lost link.
//
// # Wrapping a client with a pool of its own
//
// go-redis keeps a pool, dials lazily, and retries commands. The contract
// asks that a connection dial only where the Manager's policy allows,
// that the Manager own redials, and that Close leave nothing running, so:
//
//   - every socket comes from Events.Dialer (the pool dials later, with a
//     context of its own: the dialer, not the context, carries the policy);
//   - the client's retries are off (MaxRetries -1, DialerRetries 1: one
//     dial per try) and it keeps no idle
//     connections warm (MinIdleConns 0), so it never dials in the
//     background; maintenance notifications are off for the same reason;
//   - Connect and Ping are a PING under their context: a lost server shows
//     as a failed Ping, which the Manager counts as a lost link;
//   - refused credentials are marked connector.Permanent;
//   - Close closes the client and its pool.
//
// A client that must redial by itself instead would report each loss with
// Events.Lost from its own hook, and Connect would wait for it to be up.
package customtype

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/registry"
)

// Type is the name the type registers under: qualified, as a type of
// another module's should be.
const Type = "acme.redis"

func init() { registry.Register(Type, Connector{}) }

// Connector is the acme.redis connector.Type.
type Connector struct{}

var schema = &connector.Schema{Fields: append([]connector.Field{
	{Name: "addr", Kind: connector.String, Required: true, Endpoint: true, Doc: "host:port of the Redis server"},
	{Name: "username", Kind: connector.String, Endpoint: true, Doc: "ACL user name"},
	{Name: "password", Kind: connector.String, Secret: true, Doc: "password"},
	{Name: "db", Kind: connector.Int, Default: 0, Doc: "database number"},
}, connector.TLSFields()...)}

// Schema implements connector.Type.
func (Connector) Schema() *connector.Schema { return schema }

// options builds the client's options from props; dial opens its sockets.
func options(p connector.Props, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (*redis.Options, error) {
	var fe connector.FieldErrors
	host, _, err := net.SplitHostPort(p.String("addr"))
	if err != nil {
		fe = append(fe, connector.FieldError{Field: "addr", Message: "want host:port, such as 127.0.0.1:6379"})
	}
	if p.Int("db") < 0 {
		fe = append(fe, connector.FieldError{Field: "db", Message: "must not be negative"})
	}
	tc, tfe := connector.LoadTLS(p, host)
	fe = append(fe, tfe...)
	if len(fe) > 0 {
		return nil, fe
	}
	return &redis.Options{
		Addr: p.String("addr"), Username: p.String("username"), Password: p.String("password"), DB: int(p.Int("db")),
		TLSConfig: tc, Dialer: dial,
		MaxRetries: -1, DialerRetries: 1, MinIdleConns: 0, DisableIdentity: true, ContextTimeoutEnabled: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}, nil
}

// Open implements connector.Type: the client, which dials nothing yet.
func (Connector) Open(p connector.Props, ev connector.Events) (connector.Conn, error) {
	d := ev.Dialer()
	o, err := options(p, d.DialContext)
	if err != nil {
		return nil, err
	}
	return &conn{client: redis.NewClient(o)}, nil
}

type conn struct{ client *redis.Client }

// PeerAddr implements connector.Peer: while the server refuses, the
// Manager's watcher of its address redials as soon as it is back.
func (c *conn) PeerAddr() string { return c.client.Options().Addr }

// Connect implements connector.Conn: a PING, which dials.
func (c *conn) Connect(ctx context.Context) error { return classify(c.client.Ping(ctx).Err()) }

// Ping implements connector.Pinger: how a lost server is noticed.
func (c *conn) Ping(ctx context.Context) error { return classify(c.client.Ping(ctx).Err()) }

// Client implements connector.Conn: the shared client. Like database/sql's
// pool, it cannot be revoked per attach.
func (c *conn) Client(string) any { return c.client }

// Close implements connector.Conn.
func (c *conn) Close() error { return c.client.Close() }

// classify marks refused credentials as permanent.
func classify(err error) error {
	if err != nil && unauthorized(err) {
		return connector.Permanent(err)
	}
	return err
}

func unauthorized(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "WRONGPASS") || strings.HasPrefix(msg, "NOAUTH") || strings.Contains(msg, "invalid password")
}

// CheckSource implements connector.SourceChecker: a PING with a client of
// its own, every socket through the check's dial policy.
func (Connector) CheckSource(ctx context.Context, raw map[string]any) error { return check(ctx, raw) }

// CheckSink implements connector.SinkChecker, as CheckSource.
func (Connector) CheckSink(ctx context.Context, raw map[string]any) error { return check(ctx, raw) }

func check(ctx context.Context, raw map[string]any) error {
	p, _, err := schema.DecodeCheck(raw, nil)
	if err != nil {
		return err
	}
	o, err := options(p, connector.Dialer(ctx).DialContext)
	if err != nil {
		return err
	}
	cl := redis.NewClient(o)
	defer cl.Close()
	err = cl.Ping(ctx).Err()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, connector.ErrDialDenied):
		return err
	case unauthorized(err):
		return connector.CheckFailed(connector.ReasonUnauthorized, err)
	case ctx.Err() != nil:
		return connector.CheckFailed(connector.ReasonTimeout, fmt.Errorf("no answer from %s: %w", o.Addr, ctx.Err()))
	}
	return connector.CheckFailed(connector.NetReason(err), err)
}

// Attach attaches ref to the connection id of a (a *connection.Manager)
// and returns the shared client; a connection of another type is refused
// before anything is recorded.
func Attach(ctx context.Context, a connector.Attacher, id, ref string) (*redis.Client, error) {
	return connector.AttachAs[*redis.Client](ctx, a, id, ref)
}
