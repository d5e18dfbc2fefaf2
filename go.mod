module github.com/connkit/connkit

go 1.26

require (
	github.com/cenkalti/backoff/v5 v5.0.3
	github.com/go-sql-driver/mysql v1.10.1
	github.com/google/go-cmp v0.7.0
	github.com/jmoiron/sqlx v1.4.0
	github.com/mattn/go-sqlite3 v1.14.53
	github.com/xo/dburl v0.58.0
	go.uber.org/goleak v1.3.0
)

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/coder/websocket v1.8.15 // indirect
	github.com/eclipse/paho.mqtt.golang v1.5.1 // indirect
	github.com/edgexfoundry/go-mod-messaging/v3 v3.1.0 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	go.nanomsg.org/mangos/v3 v3.4.2 // indirect
	golang.org/x/net v0.44.0 // indirect
	golang.org/x/sync v0.17.0 // indirect
)
