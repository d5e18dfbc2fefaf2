package sql

import (
	"context"
	dbsql "database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/connkit/connkit/connector"
)

// CheckSink implements connector.SinkChecker: the database answers, the
// table exists, and every name in fields is one of its columns. Props
// beyond the connection's: table (required), fields (optional).
func (Connector) CheckSink(ctx context.Context, raw map[string]any) error {
	x, err := checkProps(raw, true)
	if err != nil {
		return err
	}
	return x.run(ctx)
}

// CheckSource implements connector.SourceChecker: the database answers, and
// the table (or datasource) exists and the query, if given, prepares.
func (Connector) CheckSource(ctx context.Context, raw map[string]any) error {
	x, err := checkProps(raw, false)
	if err != nil {
		return err
	}
	return x.run(ctx)
}

type checkSpec struct {
	target Target
	max    int64 // maxMessageBytes
	table  string
	fields []string
	query  string
}

// checkSchema is the props of a source or sink of its own in a check.
var checkSchema = &connector.Schema{Fields: []connector.Field{
	{Name: "table", Kind: connector.String, Doc: "the table rows are read from or written to"},
	{Name: "datasource", Kind: connector.String, Doc: "a source's table, as eKuiper names it"},
	{Name: "fields", Kind: connector.StringList, Doc: "columns the table must have"},
	{Name: "query", Kind: connector.String, Doc: "a source's query, which must prepare"},
}}

func checkProps(raw map[string]any, sink bool) (*checkSpec, error) {
	p, side, err := schema.DecodeCheck(raw, checkSchema)
	if err != nil {
		return nil, err
	}
	x := &checkSpec{table: side.String("table"), fields: side.Strings("fields"), query: side.String("query")}
	if x.table == "" {
		x.table = side.String("datasource")
	}
	if sink && x.table == "" {
		return nil, connector.FieldErrors{{Field: "table", Message: "required for a sink: give the table rows are written to"}}
	}
	if x.target, err = Parse(p.String("url")); err != nil {
		return nil, err
	}
	var fe connector.FieldErrors
	if x.max, fe = maxMessage(p); fe != nil {
		return nil, fe
	}
	return x, nil
}

func (x *checkSpec) run(ctx context.Context) error {
	// A check opens a SQLite file read-only, never creates one, and only
	// where the policy allows.
	t := x.target
	if x.query == "" && t.Driver == "mysql" {
		// No query of the user's to parse: the session variable dburl
		// adds (sql_mode) would only cost a round trip at connect.
		if cfg, err := mysql.ParseDSN(t.DSN); err == nil {
			cfg.Params = nil
			t.DSN = cfg.FormatDSN()
		}
	}
	var refused refusal
	db, err := openUntil(ctx, t, connector.PolicyFrom(ctx), true, slog.New(slog.DiscardHandler), limits{max: x.max, failed: refused.note})
	if err != nil {
		return err
	}
	// The socket closes when ctx ends; the driver's calls need not watch
	// it (a MySQL round trip of its own per command).
	wctx := ctx
	if t.Driver == "mysql" {
		wctx = context.WithoutCancel(ctx)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// Taking a connection logs in (or opens the file): a step of its own,
	// at no extra round trip.
	login := "auth"
	if t.Driver == "sqlite3" {
		login = "open"
	}
	conn, err := db.Conn(wctx)
	if err != nil {
		if r := refused.take(); r != nil {
			err = connector.CheckFailed(connector.ReasonUnreachable, r)
		} else {
			err = classifyCheck(ctx, err)
		}
		connector.StepNext(ctx, login, err)
		return err
	}
	defer conn.Close()
	if t.Driver == "sqlite3" {
		// Opening is lazy: the file is read at the first statement.
		err = conn.PingContext(wctx)
		if err == nil && x.table == "" && x.query == "" {
			_, err = conn.ExecContext(wctx, "SELECT 1 FROM sqlite_master LIMIT 0")
		}
		if err != nil {
			err = classifyCheck(ctx, err)
		}
	}
	connector.StepNext(ctx, login, err)
	if err != nil {
		return err
	}
	if x.table != "" {
		// One round trip: the columns of an empty result of the table.
		cols, err := columns(wctx, conn, x.target.Driver, x.table)
		var me *mysql.MySQLError
		switch {
		case err == nil:
		case errors.As(err, &me) && me.Number == 1146, strings.Contains(err.Error(), "no such table"):
			err = connector.CheckFailed(connector.ReasonMissing, fmt.Errorf("table %q does not exist", x.table))
		case refused.has():
			err = connector.CheckFailed(connector.ReasonUnreachable, refused.take())
		default:
			err = classifyCheck(ctx, err)
		}
		if err == nil {
			var missing []string
			for _, f := range x.fields {
				if !slices.ContainsFunc(cols, func(c string) bool { return strings.EqualFold(c, f) }) {
					missing = append(missing, f)
				}
			}
			if len(missing) > 0 {
				err = connector.CheckFailed(connector.ReasonMissing, fmt.Errorf("table %q has no column %s; it has %s",
					x.table, strings.Join(missing, ", "), strings.Join(cols, ", ")))
			}
		}
		connector.StepNext(ctx, "table", err)
		if err != nil {
			return err
		}
	}
	if x.query != "" {
		st, err := conn.PrepareContext(wctx, x.query)
		if err != nil {
			if r := refused.take(); r != nil {
				err = connector.CheckFailed(connector.ReasonUnreachable, r)
			} else if ctx.Err() != nil {
				err = classifyCheck(ctx, err)
			} else {
				err = connector.FieldErrors{{Field: "query", Message: "does not prepare: " + err.Error()}}
			}
			connector.StepNext(ctx, "query", err)
			return err
		}
		st.Close()
		connector.StepNext(ctx, "query", nil)
	}
	return nil
}

// mysqlLogger is the driver's Logger on a slog.Logger.
type mysqlLogger struct{ log *slog.Logger }

func (l mysqlLogger) Print(v ...any) { l.log.Warn("mysql driver: " + fmt.Sprint(v...)) }

// limits are what a MySQL server may send (maxMessageBytes), and who
// hears of a packet refused or a TLS handshake failed (newWire).
type limits struct {
	max    int64
	failed func(error)
}

// refusal keeps the last error of a wire: the driver reports one as a bad
// or invalid connection (and logs it), so the error is taken from here.
type refusal struct {
	mu  sync.Mutex
	err error
}

func (r *refusal) note(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// has reports whether an error was noted and not yet taken.
func (r *refusal) has() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err != nil
}

func (r *refusal) take() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.err
	r.err = nil
	return err
}

// open opens a pool of t under the policy p: every MySQL socket goes
// through its dial policy and a Guard (see wire), and a SQLite file must
// be one it allows. readOnly is for checks: a SQLite file is opened
// read-only, and must exist.
func open(t Target, p *connector.Policy, readOnly bool, log *slog.Logger, l limits) (*sqlx.DB, error) {
	return openUntil(nil, t, p, readOnly, log, l)
}

// openUntil is open for a check, whose every socket is closed when until
// ends: a cancellation that costs the driver nothing per call (a context
// that can be cancelled makes it watch every command).
func openUntil(until context.Context, t Target, p *connector.Policy, readOnly bool, log *slog.Logger, l limits) (*sqlx.DB, error) {
	switch t.Driver {
	case "mysql":
		cfg, err := mysql.ParseDSN(t.DSN)
		if err != nil {
			return nil, connector.FieldErrors{{Field: "url", Message: "not a MySQL URL"}}
		}
		// TLS is made by the wire, under its Guard, not by the driver.
		tc, fallback := cfg.TLS, cfg.AllowFallbackToPlaintext
		cfg.TLS, cfg.TLSConfig = nil, ""
		// The driver's own log goes to the connection's, scrubbed, not
		// to stderr.
		cfg.Logger = mysqlLogger{log}
		var pol *connector.DialPolicy
		if p != nil {
			pol = p.Dial
		}
		d := connector.PolicyDialer(pol)
		cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var nc net.Conn
			var err error
			if until == nil {
				nc, err = d.DialContext(ctx, network, addr)
			} else if nc, err = connector.Dial(until, network, addr, nil); err == nil {
				context.AfterFunc(until, func() { nc.Close() })
			}
			if err != nil {
				return nil, err
			}
			return newWire(ctx, nc, tc, fallback, l.max, l.failed), nil
		}
		c, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, connector.FieldErrors{{Field: "url", Message: err.Error()}}
		}
		return sqlx.NewDb(dbsql.OpenDB(c), "mysql"), nil
	case "sqlite3":
		dsn, err := t.SQLiteDSN(p, readOnly)
		if err != nil {
			return nil, err
		}
		return sqlx.Open("sqlite3", dsn)
	}
	return nil, connector.FieldErrors{{Field: "url", Message: fmt.Sprintf("driver %q is not supported", t.Driver)}}
}

// columns reads the columns of table from an empty result of it: one
// query, no lookup in the server's catalog. The name is quoted as an
// identifier, so it is never read as SQL.
func columns(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*dbsql.Rows, error)
}, driver, table string) ([]string, error) {
	q := `"` + strings.ReplaceAll(table, `"`, `""`) + `"`
	if driver == "mysql" {
		q = "`" + strings.ReplaceAll(table, "`", "``") + "`"
	}
	rows, err := db.QueryContext(ctx, "SELECT * FROM "+q+" LIMIT 0")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return rows.Columns()
}

func classifyCheck(ctx context.Context, err error) error {
	var me *mysql.MySQLError
	switch {
	case ctx.Err() != nil:
		return connector.CheckFailed(connector.ReasonTimeout, err)
	case errors.As(err, &me) && (me.Number == 1045 || me.Number == 1044):
		return connector.CheckFailed(connector.ReasonUnauthorized, err)
	case errors.As(err, &me) && me.Number == 1049:
		return connector.CheckFailed(connector.ReasonMissing, err)
	}
	return connector.CheckFailed(connector.NetReason(err), err)
}
