package sql_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/sql"
)

// mysqlURL returns the test server's URL, its user info split out, and
// makes the tables the checks look for.
func mysqlServer(t *testing.T) (addr, user, pw string) {
	raw := connectortest.Env(t, "CONNKIT_MYSQL_URL")
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.DB(sqlx.Open("mysql", mustParse(t, raw)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), `CREATE TABLE IF NOT EXISTS readings (id INT PRIMARY KEY, temperature DOUBLE, humidity DOUBLE)`); err != nil {
		t.Fatalf("CONNKIT_MYSQL_URL is set but MariaDB does not answer: %v", err)
	}
	p, _ := u.User.Password()
	return u.Host, u.User.Username(), p
}

func mustParse(t *testing.T, raw string) string {
	tg, err := sql.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return tg.DSN
}

func TestConformance(t *testing.T) {
	addr, user, pw := mysqlServer(t)
	props := func(a string) map[string]any {
		return map[string]any{"url": "mysql://" + user + ":" + url.QueryEscape(pw) + "@" + a + "/test"}
	}
	connectortest.Run(t, connectortest.Harness{
		Name:  sql.Type,
		Type:  sql.Connector{},
		Addr:  addr,
		Props: props,
		BadAuth: func() map[string]any {
			return map[string]any{"url": "mysql://" + user + ":Wrong-db-Pw7@" + addr + "/test"}
		},
		Secrets: []string{pw, "Wrong-db-Pw7"},
		Invalid: []connectortest.Invalid{
			{Name: "no url", Props: map[string]any{}, Fields: []string{"url"}},
			{Name: "driver not compiled in", Props: map[string]any{"url": "postgres://u:p@" + addr + "/db"}, Fields: []string{"url"}},
			{Name: "no host", Props: map[string]any{"url": "mysql://"}, Fields: []string{"url"}},
			{Name: "negative pool", Props: map[string]any{"url": "mysql://u@" + addr + "/test", "maxOpenConns": -1}, Fields: []string{"maxOpenConns"}},
			{Name: "unknown prop", Props: map[string]any{"url": "mysql://u@" + addr + "/test", "table": "t"}, Fields: []string{"table"}},
		},
		StartLate: func(t *testing.T) (string, func()) {
			d := newMariaDB(t, user, pw)
			return d.Addr(), d.Start
		},
		SourceProps: func(a string) map[string]any {
			p := props(a)
			p["table"] = "readings"
			return p
		},
		SinkProps: func(a string) map[string]any {
			p := props(a)
			p["table"], p["fields"] = "readings", []any{"temperature", "humidity"}
			return p
		},
		// The pool keeps up to maxIdleConns (2) connections.
		Conns: 2,
		// A row written through the attached pool is read back by a
		// connection of the test's own.
		Exchange: func(t *testing.T, client any) func(*testing.T) {
			db := client.(*sqlx.DB)
			direct := sqlx.MustOpen("mysql", mustParse(t, props(addr)["url"].(string)))
			t.Cleanup(func() { direct.Close() })
			ctx := context.Background()
			direct.MustExecContext(ctx, `CREATE TABLE IF NOT EXISTS conformance_rows (id VARCHAR(64) PRIMARY KEY)`)
			prefix := fmt.Sprintf("%d", time.Now().UnixNano())
			n := 0
			return func(t *testing.T) {
				n++
				id := fmt.Sprintf("%s-%d", prefix, n)
				if _, err := db.ExecContext(ctx, `INSERT INTO conformance_rows (id) VALUES (?)`, id); err != nil {
					t.Fatalf("insert through the attached pool: %v", err)
				}
				var got string
				if err := direct.GetContext(ctx, &got, `SELECT id FROM conformance_rows WHERE id = ?`, id); err != nil || got != id {
					t.Fatalf("the row is not in the database: %q %v", got, err)
				}
			}
		},
	})
}
