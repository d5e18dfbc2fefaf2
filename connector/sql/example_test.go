package sql_test

import (
	"context"
	"fmt"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/sql"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// A rule gets the connection's one *sqlx.DB with sql.Attach; a connection
// of another type is refused and leaves no ref behind.
func ExampleAttach() {
	ctx := context.Background()
	reg := &registry.Registry{}
	reg.Register(sql.Type, sql.Connector{})
	reg.Register("fake", connectortest.NewFake())
	m, _ := connection.New(ctx, memory.New(), &connection.Options{Registry: reg})
	defer m.Close()
	m.Create(ctx, connection.Spec{ID: "warehouse", Type: sql.Type, Props: map[string]any{"url": "sqlite::memory:"}})
	m.Create(ctx, connection.Spec{ID: "broker", Type: "fake", Props: map[string]any{"addr": "b"}})

	_, err := sql.Attach(ctx, m, "broker", "rule1/sink")
	in, _ := m.Get("broker")
	fmt.Println(err != nil, in.RefCount)

	db, err := sql.Attach(ctx, m, "warehouse", "rule1/sink")
	if err != nil {
		panic(err)
	}
	defer m.Detach("warehouse", "rule1/sink")
	db.MustExecContext(ctx, `CREATE TABLE readings (device TEXT, value REAL)`)
	db.MustExecContext(ctx, `INSERT INTO readings VALUES ('d1', 21.5), ('d2', 19)`)
	var avg float64
	db.GetContext(ctx, &avg, `SELECT AVG(value) FROM readings`)
	fmt.Println(avg)
	// Output:
	// true 0
	// 20.25
}
