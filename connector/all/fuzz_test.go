package all_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/connkit/connkit/connection/secret"
	"github.com/connkit/connkit/connector"
	_ "github.com/connkit/connkit/connector/all"
	"github.com/connkit/connkit/registry"
)

// noEvents is the Events of a conn that is never connected.
type noEvents struct{}

func (noEvents) Lost(error) {}

func (noEvents) Policy() *connector.Policy { return nil }

func (noEvents) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func (noEvents) Dialer() *net.Dialer { return &net.Dialer{} }

// FuzzProps decodes any JSON object as the props of every type, as the
// HTTP layer does (numbers as json.Number), and opens the result: no
// panic, and a refusal is a FieldErrors. Open does no I/O, so nothing is
// dialed. Props the schema accepts survive masking: what a client reads
// back (the masks) and sends again restores exactly what was stored.
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
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		if d.Decode(&raw) != nil || raw == nil {
			return
		}
		for _, ti := range types {
			typ, _ := registry.Default.Lookup(ti.Name)
			schema := typ.Schema()
			p, err := schema.Decode(raw)
			if err == nil && !bytes.Contains(data, []byte(secret.Mask)) {
				back, err := secret.Restore(schema, secret.MaskProps(schema, raw), raw)
				if err != nil {
					t.Fatalf("%s: the masked props do not restore: %v", ti.Name, err)
				}
				if diff := cmp.Diff(normal(schema, raw), normal(schema, back)); diff != "" {
					t.Fatalf("%s: decode -> mask -> restore changed the props (-stored +restored):\n%s", ti.Name, diff)
				}
			}
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

// normal writes the URL props in one form, so that two spellings of one
// URL (an escape more or less) compare equal.
func normal(schema *connector.Schema, p map[string]any) map[string]any {
	out := connector.Props(p).Clone()
	for _, f := range schema.Fields {
		if s, ok := out[f.Name].(string); ok && f.Kind == connector.URL {
			if u, err := url.Parse(s); err == nil {
				pw, _ := u.User.Password()
				out[f.Name] = []string{u.Scheme, u.User.Username(), pw, u.Host, u.Path, u.RawQuery, u.Opaque, u.Fragment}
			}
		}
	}
	return out
}
