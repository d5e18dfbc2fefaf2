package sql_test

import (
	"context"
	"fmt"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/sql"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// A rule gets the connection's one *sqlx.DB with sql.DB.
func ExampleDB() {
	ctx := context.Background()
	reg := &registry.Registry{}
	reg.Register(sql.Type, sql.Connector{})
	m, _ := connection.New(ctx, memory.New(), &connection.Options{Registry: reg})
	defer m.Close()
	m.Create(ctx, connection.Spec{ID: "warehouse", Type: sql.Type, Props: map[string]any{"url": "sqlite::memory:"}})

	db, err := sql.DB(m.Attach(ctx, "warehouse", "rule1/sink"))
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
	// 20.25
}
