package all_test

import (
	"bytes"
	"context"
	"encoding/json"
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
