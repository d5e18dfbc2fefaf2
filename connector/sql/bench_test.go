package sql_test

import (
	"context"
	dbsql "database/sql"
	"testing"
	"time"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/sql"
	"github.com/connkit/connkit/registry"
	"github.com/go-sql-driver/mysql"
)

// BenchmarkSinkCheck is the latency of one sink check against MariaDB:
// connect, authenticate, and look the table and its columns up.
func BenchmarkSinkCheck(b *testing.B) {
	url := connectortest.Env(b, "CONNKIT_MYSQL_URL")
	reg := &registry.Registry{}
	reg.Register(sql.Type, sql.Connector{})
	c := check.New(&check.Options{Registry: reg})
	props := map[string]any{"url": url, "table": "readings", "fields": []any{"temperature"}}
	if _, err := c.Sink(context.Background(), check.Request{Type: sql.Type, Props: props}); err != nil {
		b.Skipf("the readings table is made by the tests: %v", err)
	}
	for b.Loop() {
		if _, err := c.Sink(context.Background(), check.Request{Type: sql.Type, Props: props}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSinkCheckVsBare times, in turns in one run, a sink check that
// verifies the table and its columns, and a bare go-sql-driver connect and
// ping of the same server: the ratio is what the check's verification
// costs beyond reaching the server.
func BenchmarkSinkCheckVsBare(b *testing.B) {
	url := connectortest.Env(b, "CONNKIT_MYSQL_URL")
	target, err := sql.Parse(url)
	if err != nil {
		b.Fatal(err)
	}
	// The bare connect: the driver's own DSN, no parameter, no session
	// variable to set.
	cfg, err := mysql.ParseDSN(target.DSN)
	if err != nil {
		b.Fatal(err)
	}
	plain := mysql.NewConfig()
	plain.User, plain.Passwd, plain.Net, plain.Addr, plain.DBName = cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName
	target.DSN = plain.FormatDSN()
	reg := &registry.Registry{}
	reg.Register(sql.Type, sql.Connector{})
	c := check.New(&check.Options{Registry: reg})
	props := map[string]any{"url": url, "table": "readings", "fields": []any{"temperature"}}
	ctx := context.Background()
	if _, err := c.Sink(ctx, check.Request{Type: sql.Type, Props: props}); err != nil {
		b.Skipf("the readings table is made by the tests: %v", err)
	}
	var bare, checked time.Duration
	for b.Loop() {
		start := time.Now()
		db, err := dbsql.Open("mysql", target.DSN)
		if err != nil {
			b.Fatal(err)
		}
		if err := db.PingContext(ctx); err != nil {
			b.Fatal(err)
		}
		db.Close()
		bare += time.Since(start)
		start = time.Now()
		if _, err := c.Sink(ctx, check.Request{Type: sql.Type, Props: props}); err != nil {
			b.Fatal(err)
		}
		checked += time.Since(start)
	}
	b.ReportMetric(float64(bare.Nanoseconds())/float64(b.N), "bare-ns/op")
	b.ReportMetric(float64(checked.Nanoseconds())/float64(b.N), "check-ns/op")
	b.ReportMetric(float64(checked)/float64(bare), "check/bare")
}
