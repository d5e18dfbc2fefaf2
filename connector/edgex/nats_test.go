//go:build include_nats_messaging

package edgex

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// TestNatsRefusedUnderPolicy: a NATS bus, whose client dials on its own,
// is refused at Create by a Manager whose dial policy restricts anything,
// naming type; a Manager without one takes it.
func TestNatsRefusedUnderPolicy(t *testing.T) {
	reg := &registry.Registry{}
	reg.Register(Type, Connector{})
	props := map[string]any{"server": "127.0.0.1", "port": 4222, "type": "nats-core"}
	for _, typ := range []string{"nats-core", "nats-jetstream"} {
		props["type"] = typ
		m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler),
			Policy: &connector.Policy{Dial: &connector.DialPolicy{DenyLinkLocal: true}}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.Create(context.Background(), connection.Spec{ID: "bus", Type: Type, Props: props})
		m.Close()
		var ce *connection.Error
		if !errors.Is(err, connection.ErrInvalidArgument) || !errors.As(err, &ce) || len(ce.Fields) != 1 || ce.Fields[0].Field != "type" || !strings.Contains(err.Error(), "dial policy") {
			t.Errorf("%s under a dial policy: %v, want invalid_argument naming type and the policy", typ, err)
		}
	}
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Create(context.Background(), connection.Spec{ID: "bus", Type: Type, Props: props}); err != nil {
		t.Errorf("without a policy: %v", err)
	}
}
