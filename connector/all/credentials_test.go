package all_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// TestEveryCredentialMaskedAndSealed: user info in any URL prop and every
// request header is a secret: masked in what the Manager reports and
// sealed at rest.
func TestEveryCredentialMaskedAndSealed(t *testing.T) {
	ctx := context.Background()
	st := memory.New()
	m, err := connection.New(ctx, st, &connection.Options{Registry: registry.Default, Logger: slog.New(slog.DiscardHandler),
		SecretKey: bytes.Repeat([]byte{3}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	specs := map[string]connection.Spec{
		"mqtt":   {Type: "mqtt", Props: map[string]any{"server": "tcp://alice:Pw-in-mqtt-url@127.0.0.1:1"}},
		"nng":    {Type: "nng", Props: map[string]any{"url": "tcp://bob:Pw-in-nng-url@127.0.0.1:1"}},
		"sql":    {Type: "sql", Props: map[string]any{"url": "mysql://root:Pw-in-sql-url@127.0.0.1:1/db"}},
		"ws":     {Type: "websocket", Props: map[string]any{"addr": "127.0.0.1:1", "requestHeader": map[string]any{"X-Api-Key": "Key-in-a-header"}}},
		"edgex":  {Type: "edgex", Props: map[string]any{"server": "127.0.0.1", "port": 1, "optional": map[string]any{"Password": "Pw-in-edgex"}}},
		"mqttpw": {Type: "mqtt", Props: map[string]any{"server": "tcp://127.0.0.1:1", "password": "Pw-of-mqtt"}},
	}
	secrets := []string{"Pw-in-mqtt-url", "Pw-in-nng-url", "Pw-in-sql-url", "Key-in-a-header", "Pw-in-edgex", "Pw-of-mqtt"}
	for id, s := range specs {
		s.ID = id
		if _, err := m.Create(ctx, s); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	shown, _ := json.Marshal(m.List())
	recs, _ := st.List(ctx)
	stored, _ := json.Marshal(recs)
	for _, sec := range secrets {
		if strings.Contains(string(shown), sec) {
			t.Errorf("%s is shown: %s", sec, shown)
		}
		if strings.Contains(string(stored), sec) {
			t.Errorf("%s is stored in clear", sec)
		}
	}
	if !strings.Contains(string(shown), "alice:******@") || !strings.Contains(string(shown), `"X-Api-Key":"******"`) {
		t.Errorf("what is shown lacks the masks: %s", shown)
	}
}

// TestNoCredentialInAnUnmaskedProp: a password put where no mask would
// reach it (a user name with %3A, a path before the user info, a URL in
// edgex protocol) is refused, and the refusal does not quote it.
func TestNoCredentialInAnUnmaskedProp(t *testing.T) {
	ctx := context.Background()
	m, err := connection.New(ctx, memory.New(), &connection.Options{Registry: registry.Default, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for name, s := range map[string]connection.Spec{
		"%3A in the user":  {Type: "sql", Props: map[string]any{"url": "mysql://connkit%3AHidden-Pw1@127.0.0.1:1/test"}},
		"path form":        {Type: "sql", Props: map[string]any{"url": "mysql:/u:Hidden-Pw1@127.0.0.1:1/test"}},
		"opaque form":      {Type: "mqtt", Props: map[string]any{"server": "tcp:u:Hidden-Pw1@127.0.0.1:1"}},
		"URL in protocol":  {Type: "edgex", Props: map[string]any{"server": "h", "port": 1, "protocol": "tcp://u:Hidden-Pw1@127.0.0.1:1/#"}},
		"token in ws path": {Type: "websocket", Props: map[string]any{"addr": "127.0.0.1:1", "path": "/?token=Hidden-Pw1"}},
	} {
		s.ID = "x"
		_, err := m.Create(ctx, s)
		if !errors.Is(err, connection.ErrInvalidArgument) || strings.Contains(err.Error(), "Hidden-Pw1") {
			t.Errorf("%s: %v, want a refusal that does not quote the password", name, err)
		}
	}
}
