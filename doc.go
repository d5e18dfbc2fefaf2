// Package connkit manages named, shared connections for stream-processing
// engines: MQTT brokers, nng sockets, HTTP push endpoints, WebSocket peers,
// EdgeX message buses and SQL databases.
//
// A connection is created once, by id, and shared by every rule that
// attaches to it: a thousand rules on one connection share one physical
// client. The library stores the connections, dials them in the
// background with backoff, reports their status, and refuses to update or
// delete a connection that rules still use.
//
// # Packages
//
//   - connection: the Manager, the connection model and the error kinds.
//     Start here.
//   - connection/httpapi: the REST API (CRUD on /connections, the types on
//     /metadata/connections), mountable on any net/http mux.
//   - store, store/sqlite, store/memory: where connections are kept;
//     SQLite is the embedded default, memory is for tests.
//   - registry, connector: how a connection type plugs in; connector/all
//     registers every built-in type.
//   - connector/connectortest: the conformance suite of connector types,
//     and a fake type for unit tests.
//   - check: connectivity checks of source and sink configurations.
//   - connection/secret: how secret props are masked, bound to their
//     endpoint, scrubbed and sealed.
//
// # Embedding
//
//	st, _ := sqlite.Open(ctx, "connkit.db")
//	m, _ := connection.New(ctx, st, nil)
//	defer m.Close()
//	db, err := sql.Attach(ctx, m, "sales", "rule1/sink")
//	defer m.Detach("sales", "rule1/sink")
//
// The command examples/server serves the REST API on its own.
package connkit
