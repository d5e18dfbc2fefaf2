package sql_test

import (
	"context"
	"testing"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/sql"
	"github.com/connkit/connkit/registry"
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
