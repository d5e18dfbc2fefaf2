package websocket_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/websocket"
)

func TestConformance(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	startPeer(t, ln)
	addr := ln.Addr().String()
	connectortest.Run(t, connectortest.Harness{
		Name:  websocket.Type,
		Type:  websocket.Connector{},
		Addr:  addr,
		Props: props,
		BadAuth: func() map[string]any {
			return map[string]any{"addr": addr, "path": "/ws", "requestHeader": map[string]any{"Authorization": "Bearer wr0ng-T0ken"}}
		},
		Secrets: []string{"s3cr3t-T0ken", "wr0ng-T0ken"},
		Invalid: []connectortest.Invalid{
			{Name: "addr", Props: map[string]any{"addr": "nope"}, Fields: []string{"addr"}},
			{Name: "scheme", Props: map[string]any{"addr": addr, "scheme": "http"}, Fields: []string{"scheme"}},
			{Name: "path", Props: map[string]any{"addr": addr, "path": "ws"}, Fields: []string{"path"}},
			{Name: "header kind", Props: map[string]any{"addr": addr, "requestHeader": map[string]any{"X": map[string]any{"a": "b"}}}, Fields: []string{"requestHeader"}},
			{Name: "listenAddr", Props: map[string]any{"listenAddr": "x"}, Fields: []string{"listenAddr"}},
		},
		StartLate: func(t *testing.T) (string, func()) {
			free := listen(t, "127.0.0.1:0")
			a := free.Addr().String()
			free.Close()
			return a, func() { startPeer(t, listen(t, a)) }
		},
		SourceProps: props,
		SinkProps:   props,
		Use:         func(client any) error { return client.(*websocket.Client).Write(context.Background(), []byte("use")) },
		// The peer echoes what the client writes: one message each way.
		Exchange: func(t *testing.T, client any) func(*testing.T) {
			c := client.(*websocket.Client)
			in := c.Receive()
			n := 0
			return func(t *testing.T) {
				n++
				msg := fmt.Sprintf("m%d", n)
				if err := c.Write(context.Background(), []byte(msg)); err != nil {
					t.Fatal(err)
				}
				if got := next(t, in); got != "echo:"+msg {
					t.Fatalf("the client got %q, want the echo of %q", got, msg)
				}
			}
		},
	})
}
