package sql

import (
	"context"
	dbsql "database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"

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
	table  string
	fields []string
	query  string
}

func checkProps(raw map[string]any, sink bool) (*checkSpec, error) {
	p, err := schema.Decode(schema.Pick(raw))
	var fe connector.FieldErrors
	if err != nil {
		fe = append(fe, err.(connector.FieldErrors)...)
	}
	x := &checkSpec{}
	str := func(name string) string {
		v, ok := raw[name]
		if !ok || v == nil {
			return ""
		}
		s, ok := v.(string)
		if !ok {
			fe = append(fe, connector.FieldError{Field: name, Message: "want a string"})
		}
		return s
	}
	x.table = str("table")
	if x.table == "" {
		x.table = str("datasource")
	}
	x.query = str("query")
	if v, ok := raw["fields"]; ok && v != nil {
		l, ok := v.([]any)
		for _, f := range l {
			s, isStr := f.(string)
			ok = ok && isStr
			x.fields = append(x.fields, s)
		}
		if !ok {
			fe = append(fe, connector.FieldError{Field: "fields", Message: "want an array of column names"})
		}
	}
	if sink && x.table == "" {
		fe = append(fe, connector.FieldError{Field: "table", Message: "required for a sink: give the table rows are written to"})
	}
	if len(fe) == 0 {
		x.target, err = Parse(p.String("url"))
		if err != nil {
			return nil, err
		}
	}
	if len(fe) > 0 {
		return nil, fe
	}
	return x, nil
}

// readOnlyDSN opens an SQLite file for reading only, so that a check never
// creates a file or writes to one.
func readOnlyDSN(t Target) (string, error) {
	if t.Memory {
		return t.DSN, nil
	}
	path, _, _ := strings.Cut(t.DSN, "?")
	path = strings.TrimPrefix(path, "file:")
	fi, err := os.Stat(path)
	if err != nil {
		return "", connector.CheckFailed(connector.ReasonMissing, fmt.Errorf("database file %s does not exist or cannot be read", path))
	}
	if fi.IsDir() {
		return "", connector.CheckFailed(connector.ReasonMissing, fmt.Errorf("database file %s is a directory", path))
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=ro", nil
}

func (x *checkSpec) run(ctx context.Context) error {
	dsn := x.target.DSN
	if x.target.Driver == "sqlite3" {
		var err error
		if dsn, err = readOnlyDSN(x.target); err != nil {
			return err
		}
	}
	db, err := openForCheck(x.target.Driver, dsn)
	if err != nil {
		return connector.CheckFailed(connector.ReasonUnreachable, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		return classifyCheck(ctx, err)
	}
	if x.table != "" {
		cols, err := columns(ctx, db, x.target.Driver, x.table)
		if err != nil {
			return classifyCheck(ctx, err)
		}
		if len(cols) == 0 {
			return connector.CheckFailed(connector.ReasonMissing, fmt.Errorf("table %q does not exist", x.table))
		}
		var missing []string
		for _, f := range x.fields {
			if !slices.ContainsFunc(cols, func(c string) bool { return strings.EqualFold(c, f) }) {
				missing = append(missing, f)
			}
		}
		if len(missing) > 0 {
			return connector.CheckFailed(connector.ReasonMissing, fmt.Errorf("table %q has no column %s; it has %s",
				x.table, strings.Join(missing, ", "), strings.Join(cols, ", ")))
		}
	}
	if x.query != "" {
		st, err := db.PrepareContext(ctx, x.query)
		if err != nil {
			if ctx.Err() != nil {
				return classifyCheck(ctx, err)
			}
			return connector.FieldErrors{{Field: "query", Message: "does not prepare: " + err.Error()}}
		}
		st.Close()
	}
	return nil
}

// openForCheck opens a pool whose MySQL dials go through connector.Dialer,
// so that a check's DialPolicy holds.
func openForCheck(driver, dsn string) (*sqlx.DB, error) {
	if driver != "mysql" {
		return sqlx.Open(driver, dsn)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return connector.Dialer(ctx).DialContext(ctx, network, addr)
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sqlx.NewDb(dbsql.OpenDB(c), "mysql"), nil
}

func columns(ctx context.Context, db *sqlx.DB, driver, table string) ([]string, error) {
	var cols []string
	q := `SELECT name FROM pragma_table_info(?) ORDER BY cid`
	if driver == "mysql" {
		q = `SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`
	}
	err := db.SelectContext(ctx, &cols, q, table)
	return cols, err
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
