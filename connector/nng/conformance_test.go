package nng_test

import (
	"fmt"
	"testing"

	"go.nanomsg.org/mangos/v3"

	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/nng"
)

func TestConformance(t *testing.T) {
	addr := freeAddr(t)
	p := peer(t, "tcp://"+addr)
	props := func(a string) map[string]any { return map[string]any{"url": "tcp://" + a} }
	connectortest.Run(t, connectortest.Harness{
		Name:  nng.Type,
		Type:  nng.Connector{},
		Addr:  addr,
		Props: props,
		Invalid: []connectortest.Invalid{
			{Name: "no url", Props: map[string]any{}, Fields: []string{"url"}},
			{Name: "http", Props: map[string]any{"url": "http://127.0.0.1:80"}, Fields: []string{"url"}},
			{Name: "no port", Props: map[string]any{"url": "tcp://127.0.0.1"}, Fields: []string{"url"}},
			{Name: "bus", Props: map[string]any{"url": "tcp://" + addr, "protocol": "bus"}, Fields: []string{"protocol"}},
			{Name: "long ipc path", Props: map[string]any{"url": "ipc:///tmp/" + longName()}, Fields: []string{"url"}},
		},
		StartLate: func(t *testing.T) (string, func()) {
			a := freeAddr(t)
			return a, func() { peer(t, "tcp://"+a) }
		},
		SourceProps: props,
		SinkProps:   props,
		Use: func(client any) error {
			_, err := client.(mangos.Socket).GetOption(mangos.OptionRecvDeadline)
			return err
		},
		// A message each way between the attached socket and the peer.
		Exchange: func(t *testing.T, client any) func(*testing.T) {
			s := client.(mangos.Socket)
			n := 0
			return func(t *testing.T) {
				n++
				out, in := fmt.Sprintf("to peer %d", n), fmt.Sprintf("from peer %d", n)
				if err := s.Send([]byte(out)); err != nil {
					t.Fatal(err)
				}
				if got := recv(t, p); got != out {
					t.Fatalf("the peer got %q, want %q", got, out)
				}
				if err := p.Send([]byte(in)); err != nil {
					t.Fatal(err)
				}
				if got := recv(t, s); got != in {
					t.Fatalf("the client got %q, want %q", got, in)
				}
			}
		},
	})
}
