package all_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// TestNoAnswerGrowsWithTheInput: props with thousands of unknown keys, a
// huge type name, props over the cap: each answer is small and quick,
// at create and at check.
func TestNoAnswerGrowsWithTheInput(t *testing.T) {
	ctx := context.Background()
	opt := map[string]any{}
	top := map[string]any{"server": "127.0.0.1"}
	for i := range 4000 {
		opt[fmt.Sprintf("K%d", i)] = 1
		top[fmt.Sprintf("k%d", i)] = 1
	}
	m, err := connection.New(ctx, memory.New(), &connection.Options{Registry: registry.Default, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := check.New(&check.Options{Registry: registry.Default})
	for name, props := range map[string]map[string]any{
		"unknown optional keys": {"server": "127.0.0.1", "optional": opt},
		"unknown props":         top,
		"props over the cap":    {"server": "127.0.0.1", "optional": map[string]any{"Username": strings.Repeat("u", 100<<10)}},
	} {
		start := time.Now()
		_, cerr := m.Create(ctx, connection.Spec{ID: "x", Type: "edgex", Props: props})
		_, kerr := c.Sink(ctx, check.Request{Type: "edgex", Props: props})
		// A check ignores top-level keys it does not know (a source's own).
		if !errors.Is(cerr, connection.ErrInvalidArgument) || (name != "unknown props" && !errors.Is(kerr, check.ErrInvalid)) {
			t.Errorf("%s: %v / %v, want both refused", name, cerr, kerr)
		}
		var ce *connection.Error
		var ke *check.Error
		errors.As(cerr, &ce)
		errors.As(kerr, &ke)
		if ce == nil || len(ce.Message) > 8<<10 || len(ce.Fields) > 25 || (ke != nil && (len(ke.Message) > 8<<10 || len(ke.Fields) > 25)) {
			t.Errorf("%s: answers of %d and %d bytes", name, len(fmt.Sprint(cerr)), len(fmt.Sprint(kerr)))
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s took %v", name, d)
		}
	}
	_, err = m.Create(ctx, connection.Spec{ID: "x", Type: strings.Repeat("t", 1<<20), Props: nil})
	if err == nil || len(err.Error()) > 1024 {
		t.Errorf("an unknown type of 1 MiB: an answer of %d bytes", len(fmt.Sprint(err)))
	}
}

// TestPortsAreNumbers: a port that is no number from 1 to 65535 is
// refused at create, naming its prop, rather than dialed for ever.
func TestPortsAreNumbers(t *testing.T) {
	ctx := context.Background()
	m, err := connection.New(ctx, memory.New(), &connection.Options{Registry: registry.Default, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	long := strings.Repeat("9", 3000)
	for _, tc := range []struct{ typ, field, value string }{
		{"mqtt", "server", "tcp://127.0.0.1:" + long}, {"mqtt", "server", "tcp://127.0.0.1:70000"},
		{"websocket", "addr", "127.0.0.1:" + long}, {"websocket", "listenAddr", "127.0.0.1:99999"},
		{"nng", "url", "tcp://127.0.0.1:" + long},
	} {
		_, err := m.Create(ctx, connection.Spec{ID: "p", Type: tc.typ, Props: map[string]any{tc.field: tc.value}})
		var ce *connection.Error
		if !errors.As(err, &ce) || len(ce.Fields) == 0 || ce.Fields[0].Field != tc.field || len(err.Error()) > 400 {
			t.Errorf("%s %s=%.40s: %.200v", tc.typ, tc.field, tc.value, err)
		}
	}
}
