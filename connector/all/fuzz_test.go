package all_test

import (
	"encoding/json"
	"testing"

	"github.com/connkit/connkit/connector"
	_ "github.com/connkit/connkit/connector/all"
	"github.com/connkit/connkit/registry"
)

// noEvents is the Events of a conn that is never connected.
type noEvents struct{}

func (noEvents) Lost(error) {}

// FuzzProps decodes any JSON object as the props of every type and opens
// the result: no panic, and a refusal is a FieldErrors. Open does no I/O,
// so nothing is dialed.
func FuzzProps(f *testing.F) {
	for _, s := range []string{
		`{"server":"tcp://127.0.0.1:1883","username":"u","password":"p","keepAlive":30,"protocolVersion":"3.1.1"}`,
		`{"server":"ssl://h:8883","rootCaPath":"/nonexistent","certificationPath":"/c"}`,
		`{"url":"mysql://u:p@127.0.0.1:3306/db","maxOpenConns":-1}`, `{"url":"sqlite::memory:"}`, `{"url":"postgres://x"}`,
		`{"url":"tcp://127.0.0.1:5555","protocol":"push"}`, `{"url":"ipc:///tmp/x.ipc"}`, `{"url":"ipc://"}`,
		`{"addr":"127.0.0.1:0","path":"/ws","requestHeader":{"Authorization":"t","X":1}}`, `{"addr":"","listenAddr":"x"}`,
		`{"addr":"127.0.0.1:0","endpoint":"/in","method":"PUT"}`,
		`{"server":"127.0.0.1","port":1883,"optional":{"ClientId":"c","Qos":"1","Password":"p","KeepAlive":-3}}`,
		`{"server":"h","type":"nats-core"}`, `{"port":1e30}`, `{}`, `{"optional":null}`,
	} {
		f.Add([]byte(s))
	}
	types := registry.Default.List()
	f.Fuzz(func(t *testing.T, data []byte) {
		var raw map[string]any
		if json.Unmarshal(data, &raw) != nil {
			return
		}
		for _, ti := range types {
			typ, _ := registry.Default.Lookup(ti.Name)
			p, err := typ.Schema().Decode(raw)
			if err != nil {
				if _, ok := err.(connector.FieldErrors); !ok {
					t.Fatalf("%s: Decode error %T %v", ti.Name, err, err)
				}
				continue
			}
			c, err := typ.Open(p, noEvents{})
			if err != nil {
				if _, ok := err.(connector.FieldErrors); !ok {
					t.Fatalf("%s: Open error %T %v, want FieldErrors", ti.Name, err, err)
				}
				continue
			}
			c.Close()
		}
	})
}
