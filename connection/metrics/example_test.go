package metrics_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/metrics"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

func ExampleRegister() {
	ctx := context.Background()
	fake := connectortest.NewFake()
	fake.SetUp("broker", true)
	reg := &registry.Registry{}
	reg.Register("fake", fake)
	m, _ := connection.New(ctx, memory.New(), &connection.Options{Registry: reg})
	defer m.Close()
	m.Create(ctx, connection.Spec{ID: "bus", Type: "fake", Props: map[string]any{"addr": "broker"}})
	m.WaitConnected(ctx, "bus")

	// A registry of your own; serve it with promhttp.HandlerFor.
	pr := prometheus.NewRegistry()
	c, err := metrics.Register(pr, m)
	if err != nil {
		panic(err)
	}
	err = testutil.CollectAndCompare(c, strings.NewReader(`
# HELP connkit_connection_refs How many attaches hold the connection.
# TYPE connkit_connection_refs gauge
connkit_connection_refs{connection="bus",type="fake"} 0
`), "connkit_connection_refs")
	fmt.Println(err)
	// Output:
	// <nil>
}
