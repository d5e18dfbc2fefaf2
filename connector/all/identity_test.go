package all_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// TestNoClientIDFights: two connections with one MQTT client id on one
// broker would kick each other off it for ever. The second is refused with
// 409 naming the first, across mqtt and edgex, at create and at update,
// and under a race of creates only one wins.
func TestNoClientIDFights(t *testing.T) {
	ctx := context.Background()
	m, err := connection.New(ctx, memory.New(), &connection.Options{Registry: registry.Default, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	create := func(id, typ string, props map[string]any) error {
		_, err := m.Create(ctx, connection.Spec{ID: id, Type: typ, Props: props})
		return err
	}
	if err := create("a", "mqtt", map[string]any{"server": "tcp://127.0.0.1:1", "clientid": "c1"}); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		typ   string
		props map[string]any
		field string
	}{
		"same server":     {"mqtt", map[string]any{"server": "tcp://127.0.0.1:1", "clientid": "c1"}, "clientid"},
		"edgex on it":     {"edgex", map[string]any{"server": "127.0.0.1", "port": 1, "optional": map[string]any{"ClientId": "c1"}}, "optional"},
		"mqtt scheme":     {"mqtt", map[string]any{"server": "mqtt://127.0.0.1:1", "clientid": "c1"}, "clientid"},
		"localhost":       {"mqtt", map[string]any{"server": "tcp://localhost:1", "clientid": "c1"}, "clientid"},
		"leading zero":    {"mqtt", map[string]any{"server": "tcp://127.0.0.1:0001", "clientid": "c1"}, "clientid"},
		"IPv4-mapped":     {"mqtt", map[string]any{"server": "tcp://[::ffff:127.0.0.1]:1", "clientid": "c1"}, "clientid"},
		"edgex localhost": {"edgex", map[string]any{"server": "LOCALHOST", "port": 1, "optional": map[string]any{"ClientId": "c1"}}, "optional"},
	} {
		err := create("b", tc.typ, tc.props)
		var ce *connection.Error
		if !errors.As(err, &ce) || ce.Code != connection.CodeAlreadyExists || len(ce.Fields) == 0 || ce.Fields[0].Field != tc.field {
			t.Errorf("%s: %v, want already_exists naming %s", name, err, tc.field)
		} else if !strings.Contains(ce.Message, `connection "a"`) {
			t.Errorf("%s: %q does not name connection a", name, ce.Message)
		}
	}
	// Another broker, or no client id (a random one), is no fight.
	if err := create("b", "mqtt", map[string]any{"server": "tcp://127.0.0.1:2", "clientid": "c1"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c", "d"} {
		if err := create(id, "mqtt", map[string]any{"server": "tcp://127.0.0.1:1"}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = m.Update(ctx, connection.Spec{ID: "b", Type: "mqtt", Props: map[string]any{"server": "tcp://127.0.0.1:1", "clientid": "c1"}}, connection.Tag{})
	if !errors.Is(err, connection.ErrAlreadyExists) {
		t.Errorf("an update onto a's client id: %v", err)
	}
	if err := m.Delete(ctx, "a", connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Update(ctx, connection.Spec{ID: "b", Type: "mqtt", Props: map[string]any{"server": "tcp://127.0.0.1:1", "clientid": "c1"}}, connection.Tag{}); err != nil {
		t.Errorf("the client id once a is gone: %v", err)
	}
	// A race of creates for one client id: one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if create(string(rune('p'+i)), "mqtt", map[string]any{"server": "tcp://127.0.0.1:3", "clientid": "raced"}) == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d creates with one client id won, want 1", wins)
	}
}
