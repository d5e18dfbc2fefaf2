package httppush_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/httppush"
)

func TestConformance(t *testing.T) {
	props := func(a string) map[string]any { return map[string]any{"addr": a} }
	// No keep-alive: a pushing client must leave nothing open behind it.
	pusher := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	connectortest.Run(t, connectortest.Harness{
		Name:  httppush.Type,
		Type:  httppush.Connector{},
		Addr:  "127.0.0.1:0",
		Props: props,
		Unreachable: func(t *testing.T) map[string]any {
			a, _ := taken(t)
			return props(a)
		},
		StartLate: func(t *testing.T) (string, func()) { return taken(t) },
		// The type listens: each ref has its own Receiver, and shared
		// means one listener.
		Listens:     true,
		SourceProps: props,
		Same:        func(a, b any) bool { return a.(*httppush.Receiver).Addr() == b.(*httppush.Receiver).Addr() },
		Use: func(client any) error {
			_, err := client.(*httppush.Receiver).Receive(fmt.Sprintf("/use/%d", time.Now().UnixNano()), "POST")
			return err
		},
		// A request pushed to the listener reaches the attached receiver.
		Exchange: func(t *testing.T, client any) func(*testing.T) {
			r := client.(*httppush.Receiver)
			path := fmt.Sprintf("/conformance/%d", time.Now().UnixNano())
			ch, err := r.Receive(path, "POST")
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			return func(t *testing.T) {
				n++
				body := fmt.Sprintf(`{"n":%d}`, n)
				// The push is answered once the receiver has it.
				answered := make(chan error, 1)
				go func() {
					res, err := pusher.Post("http://"+r.Addr()+path, "application/json", strings.NewReader(body))
					if err == nil {
						res.Body.Close()
						if res.StatusCode != http.StatusOK {
							err = fmt.Errorf("push answered %d", res.StatusCode)
						}
					}
					answered <- err
				}()
				if got := take(t, ch); string(got.Body) != body {
					t.Fatalf("the receiver got %q, want %q", got.Body, body)
				}
				if err := <-answered; err != nil {
					t.Fatal(err)
				}
			}
		},
		Invalid: []connectortest.Invalid{
			{Name: "addr", Props: map[string]any{"addr": "nope"}, Fields: []string{"addr"}},
			{Name: "method", Props: map[string]any{"method": "GET"}, Fields: []string{"method"}},
			{Name: "endpoint", Props: map[string]any{"endpoint": "orders"}, Fields: []string{"endpoint"}},
			{Name: "cert without key", Props: map[string]any{"certificationPath": "/c.pem"}, Fields: []string{"privateKeyPath"}},
		},
	})
}
