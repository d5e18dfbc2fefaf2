// Package sql is the connection type "sql": a shared *sqlx.DB pool for
// MySQL (and MariaDB) or SQLite.
//
// Props:
//
//	url              mysql://user:pass@host:port/db?params, sqlite:path,
//	                 or sqlite::memory: (required; the password is secret).
//	                 Parsed by github.com/xo/dburl, as eKuiper does.
//	maxOpenConns     most open connections in the pool; 0 means no limit
//	maxIdleConns     most idle connections kept; default 2
//	connMaxLifetime  seconds a connection is reused; 0 means forever
//	maxMessageBytes  MySQL: the largest message the server may send, one
//	                 packet or packets of the largest size joined; default
//	                 16 MiB - 1, the protocol's own largest packet
//
// An engine gets the pool with Attach, which refuses a connection of
// another type before anything is recorded:
//
//	db, err := sql.Attach(ctx, m, "db1", "rule1/sink")
//
// Every MySQL socket comes from the policy's dialer and is guarded: no
// server can make a dial allocate more than connector.HandshakeBudget
// before its login's OK, whatever its packet headers claim, and a packet
// over maxMessageBytes closes its link (the status says so). For that, TLS
// (tls=true, skip-verify or preferred) is made by connkit rather than the
// driver, which is told none: the Guard sees the packets inside it. The
// driver then takes the path of a plain link for caching_sha2_password's
// full authentication (it asks for the server's RSA key rather than
// sending the password over the TLS it does not know of).
//
// Every attach gets the one shared pool, a *sqlx.DB. Unlike the views of
// the other types it cannot be revoked when the attach is released: it
// works on until the connection is updated or deleted, when it is closed
// ("sql: database is closed"). Stop using it once detached.
package sql

import (
	"context"
	dbsql "database/sql"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
	"github.com/xo/dburl"

	// The drivers this type speaks.
	_ "github.com/mattn/go-sqlite3"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/registry"
)

// Type is the name this connection type registers under.
const Type = "sql"

func init() { registry.Register(Type, Connector{}) }

// Connector is the sql connector.Type.
type Connector struct{}

var schema = &connector.Schema{Fields: []connector.Field{
	{Name: "url", Kind: connector.URL, Required: true, Secret: true,
		Doc: "mysql://user:pass@host:port/db or sqlite:path"},
	{Name: "maxOpenConns", Kind: connector.Int, Default: 0, Doc: "most open connections; 0 means no limit"},
	{Name: "maxIdleConns", Kind: connector.Int, Default: 2, Doc: "most idle connections kept"},
	{Name: "connMaxLifetime", Kind: connector.Int, Default: 0, Doc: "seconds a connection is reused; 0 means forever"},
	connector.MaxMessageField(maxPacket, "MySQL: the largest message the server may send, a packet or the packets of the largest size the driver joins into one; default 16 MiB - 1, the protocol's own largest packet, since a row may be that large"),
}}

// Schema implements connector.Type.
func (Connector) Schema() *connector.Schema { return schema }

// Target is a parsed url: the database/sql driver and its DSN.
type Target struct {
	Driver string
	// DSN is the driver's data source name: for MySQL with only the
	// allowed parameters; for a SQLite file, see SQLiteDSN.
	DSN string
	// Memory is true for an in-memory SQLite database, which lives in one
	// connection only.
	Memory bool
	// Path is the SQLite file as the url names it, and Params its allowed
	// parameters.
	Path   string
	Params url.Values
}

// sqliteParams are the only parameters a SQLite url may carry, and their
// allowed values (nil: any). No vfs, no pragma that changes a database
// for good (journal mode), nothing that loads code.
var sqliteParams = map[string][]string{
	"mode": {"ro", "rw", "rwc", "memory"}, "cache": {"shared", "private"},
	"_busy_timeout": nil, "_timeout": nil, "_foreign_keys": nil, "_fk": nil,
	"_loc": nil, "_txlock": {"immediate", "deferred", "exclusive"},
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// allowed checks the parameters q against an allow-list.
func allowed(q url.Values, list map[string][]string) error {
	for k, vs := range q {
		values, ok := list[k]
		if !ok {
			names := slices.Sorted(maps.Keys(list))
			return fmt.Errorf("parameter %q is not allowed; the allowed ones are %s", k, strings.Join(names, ", "))
		}
		for _, v := range vs {
			if values != nil && !slices.Contains(values, v) {
				return fmt.Errorf("parameter %s=%q is not allowed; use one of %s", k, v, strings.Join(values, ", "))
			}
		}
	}
	return nil
}

// SQLiteDSN returns the DSN of a SQLite target whose file the policy
// allows (a nil policy allows any): a file: URI of the file's absolute
// path with the allowed parameters, or the in-memory database. readOnly
// opens an existing file for reading only, and never creates one.
func (t Target) SQLiteDSN(p *connector.Policy, readOnly bool) (string, error) {
	q := url.Values{}
	for k, v := range t.Params {
		q[k] = v
	}
	if t.Memory {
		q.Del("mode")
		q.Set("mode", "memory")
		if t.Path == ":memory:" || t.Path == "" {
			return "file::memory:?" + q.Encode(), nil
		}
		// A named in-memory database: the name is no file.
		return "file:" + url.PathEscape(t.Path) + "?" + q.Encode(), nil
	}
	abs, err := p.File(t.Path)
	if err != nil {
		return "", connector.FieldErrors{{Field: "url", Message: err.Error()}}
	}
	if readOnly {
		fi, err := os.Stat(abs)
		if err != nil || !fi.Mode().IsRegular() {
			return "", connector.CheckFailed(connector.ReasonMissing, fmt.Errorf("database file %s does not exist or cannot be read", t.Path))
		}
		q = url.Values{"mode": {"ro"}}
		// Reading a WAL database makes SQLite create its -shm beside it,
		// unless the database is opened immutable. That is safe only while
		// no writer has it open, which its side files would show.
		if !exists(abs+"-wal") && !exists(abs+"-shm") {
			q.Set("immutable", "1")
		}
	}
	return "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + q.Encode(), nil
}

// Parse turns a connection url into a driver and DSN, with an error that
// names the url prop and never quotes the password.
func Parse(raw string) (Target, error) {
	if msg := connector.UnmaskableURL(raw); msg != "" {
		return Target{}, connector.FieldErrors{{Field: "url", Message: msg}}
	}
	u, err := dburl.Parse(raw)
	if err != nil {
		return Target{}, connector.FieldErrors{{Field: "url", Message: describeParseError(err)}}
	}
	if !slices.Contains(dbsql.Drivers(), u.Driver) {
		return Target{}, connector.FieldErrors{{Field: "url", Message: fmt.Sprintf(
			"scheme %q needs the database driver %q, which is not compiled in; use mysql:// or sqlite:", u.OriginalScheme, u.Driver)}}
	}
	t := Target{Driver: u.Driver, DSN: u.DSN}
	switch u.Driver {
	case "mysql":
		if t.DSN, err = mysqlDSN(u); err != nil {
			return Target{}, connector.FieldErrors{{Field: "url", Message: err.Error()}}
		}
	case "sqlite3":
		// In memory or a file is read from the parsed url, never from a
		// substring of it.
		t.Path, t.Params = u.Opaque, u.Query()
		if t.Path == "" {
			t.Path = u.Path
		}
		if err := allowed(t.Params, sqliteParams); err != nil {
			return Target{}, connector.FieldErrors{{Field: "url", Message: err.Error()}}
		}
		if t.Params.Get("_loc") == "" {
			t.Params.Set("_loc", "auto") // as dburl does
		}
		t.Memory = t.Path == ":memory:" || t.Params.Get("mode") == "memory"
		if t.Path == "" {
			return Target{}, connector.FieldErrors{{Field: "url", Message: "no database path; use sqlite:path or sqlite::memory:"}}
		}
		t.DSN, _ = t.SQLiteDSN(nil, false)
	}
	return t, nil
}

// mysqlParams are the only parameters a MySQL url may carry: timeouts,
// how values are read, and TLS on or off. Nothing that reads the host's
// files (allowAllFiles), sends a password in clear or weakly hashed
// (allowCleartextPasswords, allowOldPasswords, allowFallbackToPlaintext),
// runs several statements in one, or sets server variables.
var mysqlParams = map[string][]string{
	"timeout": nil, "readTimeout": nil, "writeTimeout": nil, "charset": nil, "collation": nil,
	"loc": nil, "parseTime": nil, "maxAllowedPacket": nil,
	"tls": {"true", "false", "skip-verify", "preferred"},
}

// mysqlDSN checks the parameters and the host, and repairs an IPv6
// address, which dburl writes without its brackets.
func mysqlDSN(u *dburl.URL) (string, error) {
	if err := allowed(u.Query(), mysqlParams); err != nil {
		return "", err
	}
	if u.Host == "" && u.Transport != "unix" {
		return "", errors.New("no host; use mysql://user:pass@host:port/db")
	}
	cfg, err := mysql.ParseDSN(u.DSN)
	if err != nil {
		return "", errors.New("not a MySQL URL; use mysql://user:pass@host:port/db")
	}
	// Checked above; cleared again so that no spelling dburl or the driver
	// accept can turn them on.
	cfg.AllowAllFiles, cfg.AllowCleartextPasswords, cfg.AllowOldPasswords = false, false, false
	cfg.AllowFallbackToPlaintext, cfg.MultiStatements = false, false
	cfg.Params = nil
	if mode := u.Query().Get("sql_mode"); mode == "" && strings.Contains(u.DSN, "sql_mode=ansi") {
		cfg.Params = map[string]string{"sql_mode": "ansi"} // dburl's own, as eKuiper has it
	}
	if cfg.Net == "tcp" && strings.Contains(u.Hostname(), ":") {
		port := u.Port()
		if port == "" {
			port = "3306"
		}
		cfg.Addr = net.JoinHostPort(u.Hostname(), port)
	}
	return cfg.FormatDSN(), nil
}

func describeParseError(err error) string {
	switch {
	case errors.Is(err, dburl.ErrInvalidDatabaseScheme), errors.Is(err, dburl.ErrUnknownDatabaseScheme):
		return "unknown database scheme; use mysql://user:pass@host:port/db or sqlite:path"
	case errors.Is(err, dburl.ErrMissingHost):
		return "no host; use mysql://user:pass@host:port/db"
	case errors.Is(err, dburl.ErrMissingPath):
		return "no database path; use sqlite:path"
	}
	return "not a database URL (" + err.Error() + "); use mysql://user:pass@host:port/db or sqlite:path"
}

// Open implements connector.Type. It builds the pool, which opens no
// connection until Connect pings.
func (Connector) Open(p connector.Props, ev connector.Events) (connector.Conn, error) {
	t, err := Parse(p.String("url"))
	if err != nil {
		return nil, err
	}
	var fe connector.FieldErrors
	for _, n := range []string{"maxOpenConns", "maxIdleConns", "connMaxLifetime"} {
		if p.Int(n) < 0 {
			fe = append(fe, connector.FieldError{Field: n, Message: "must not be negative"})
		}
	}
	max, mfe := maxMessage(p)
	fe = append(fe, mfe...)
	if len(fe) > 0 {
		return nil, fe
	}
	c := &conn{memory: t.Memory}
	db, err := open(t, ev.Policy(), false, ev.Logger(), limits{max: max, failed: func(err error) {
		var le *connector.LimitError
		if errors.As(err, &le) && le.Up {
			// A pooled link refused a packet: the status says so.
			ev.Lost(fmt.Errorf("closed a link: %w", err))
			return
		}
		c.refused.note(err)
	}})
	if err != nil {
		return nil, err
	}
	c.db = db
	db.SetMaxOpenConns(int(p.Int("maxOpenConns")))
	db.SetMaxIdleConns(int(p.Int("maxIdleConns")))
	db.SetConnMaxLifetime(time.Duration(p.Int("connMaxLifetime")) * time.Second)
	if t.Memory {
		// Every new connection would see a new, empty database.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
	}
	if cfg, err := mysql.ParseDSN(t.DSN); t.Driver == "mysql" && err == nil && cfg.Net == "tcp" {
		c.peer = cfg.Addr
	}
	return c, nil
}

type conn struct {
	db      *sqlx.DB
	peer    string // the MySQL server's host:port; "" for SQLite
	memory  bool   // an in-memory SQLite database
	refused refusal
}

// maxMessage is maxMessageBytes of p, at most the protocol's own.
func maxMessage(p connector.Props) (int64, connector.FieldErrors) {
	n, fe := connector.MaxMessage(p)
	return min(n, maxPacket), fe
}

// ping pings the pool; a packet refused while dialing is its error.
func (c *conn) ping(ctx context.Context) error {
	err := c.db.PingContext(ctx)
	if r := c.refused.take(); err != nil && r != nil {
		err = r
	}
	return classify(err)
}

// PeerAddr implements connector.Peer.
func (c *conn) PeerAddr() string { return c.peer }

// Connect pings the database. An in-memory database has nothing to reach:
// its pool makes it at first use, so that idle ones cost no memory and a
// SQLite handle (whose Close scans every open handle in go-sqlite3).
func (c *conn) Connect(ctx context.Context) error {
	if c.memory {
		return nil
	}
	return c.ping(ctx)
}

// Ping implements connector.Pinger. An in-memory database is not opened
// by a health ping either: it is opened by its first user.
func (c *conn) Ping(ctx context.Context) error {
	if c.memory {
		return nil
	}
	return c.ping(ctx)
}

func (c *conn) Client(string) any { return c.db }

func (c *conn) Close() error { return c.db.Close() }

// classify marks the errors that retrying will not fix.
func classify(err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1044, 1045, 1049: // access denied, bad credentials, unknown database
			return connector.Permanent(err)
		}
	}
	return err
}

// Attach attaches ref to the connection id of a (such as a
// *connection.Manager) and returns the shared pool. A connection of
// another type is refused before anything is recorded. Release it with
// Detach(id, ref).
func Attach(ctx context.Context, a connector.Attacher, id, ref string) (*sqlx.DB, error) {
	return DB(connector.AttachAs[*sqlx.DB](ctx, a, id, ref))
}

// DB returns the pool that Attach of a Manager handed out, for use as
//
//	db, err := sql.DB(m.Attach(ctx, id, ref))
//
// On a connection of another type it fails and the ref stays attached:
// prefer Attach, which checks first.
func DB(client any, err error) (*sqlx.DB, error) { return connector.As[*sqlx.DB](client, err) }
