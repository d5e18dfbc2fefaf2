package httppush_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/httppush"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// A rule that must have processed a push before the sender may forget it
// takes pushes with Handle: the request is answered 200 once the handler
// returned nil, and 503 with Retry-After if it fails.
func ExampleReceiver_Handle() {
	ctx := context.Background()
	reg := &registry.Registry{}
	reg.Register(httppush.Type, httppush.Connector{})
	m, _ := connection.New(ctx, memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	defer m.Close()
	m.Create(ctx, connection.Spec{ID: "ingest", Type: httppush.Type, Props: map[string]any{"addr": "127.0.0.1:0", "endpoint": "/orders"}})
	for in, _ := m.Get("ingest"); in.State != connection.StateConnected; in, _ = m.Get("ingest") {
		time.Sleep(5 * time.Millisecond)
	}
	r, _ := httppush.Attach(ctx, m, "ingest", "rule1/source")
	r.Handle("", "", func(ctx context.Context, msg httppush.Message) error {
		if !strings.HasPrefix(string(msg.Body), "{") {
			return fmt.Errorf("the store is not taking %q yet", msg.Body)
		}
		return nil // stored: the sender may forget it
	})
	for _, body := range []string{`{"order":1}`, `not yet`} {
		res, err := http.Post("http://"+r.Addr()+"/orders", "application/json", strings.NewReader(body))
		if err != nil {
			fmt.Println(err)
			return
		}
		res.Body.Close()
		if ra := res.Header.Get("Retry-After"); ra != "" {
			fmt.Println(res.StatusCode, "retry after", ra)
		} else {
			fmt.Println(res.StatusCode)
		}
	}
	// Output:
	// 200
	// 503 retry after 1
}
