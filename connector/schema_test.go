package connector_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/connkit/connkit/connector"
)

var schema = &connector.Schema{Fields: []connector.Field{
	{Name: "server", Kind: connector.String, Required: true},
	{Name: "keepAlive", Kind: connector.Int, Default: 60},
	{Name: "ratio", Kind: connector.Float},
	{Name: "tls", Kind: connector.Bool},
	{Name: "fields", Kind: connector.StringList},
	{Name: "optional", Kind: connector.Map, SecretKeys: []string{"Password"}},
	{Name: "password", Kind: connector.String, Secret: true},
	{Name: "url", Kind: connector.URL, Secret: true},
	{Name: "protocolVersion", Kind: connector.String, Default: "3.1.1", Allowed: []any{"3.1", "3.1.1"}},
}}

func TestDecode(t *testing.T) {
	got, err := schema.Decode(map[string]any{
		"server":    "tcp://127.0.0.1:1883",
		"keepAlive": json.Number("30"),
		"ratio":     1,
		"tls":       true,
		"fields":    []any{"a", "b"},
		"optional":  map[string]any{"ClientId": "c"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := connector.Props{
		"server": "tcp://127.0.0.1:1883", "keepAlive": int64(30), "ratio": float64(1), "tls": true,
		"fields": []string{"a", "b"}, "optional": map[string]any{"ClientId": "c"}, "protocolVersion": "3.1.1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Decode (-want +got):\n%s", diff)
	}
	if got.Int("keepAlive") != 30 || got.String("server") == "" || !got.Bool("tls") || len(got.Strings("fields")) != 2 {
		t.Errorf("getters: %v", got)
	}
	d, err := schema.Decode(map[string]any{"server": "x"})
	if err != nil || d.Int("keepAlive") != 60 {
		t.Errorf("default keepAlive: %v %v", d, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	_, err := schema.Decode(map[string]any{
		"keepAlive":       "60",
		"ratio":           "x",
		"tls":             "yes",
		"fields":          []any{"a", 1},
		"optional":        []any{},
		"protocolVersion": "5",
		"bogus":           1,
		"url":             "http://[::1",
	})
	fe, ok := err.(connector.FieldErrors)
	if !ok {
		t.Fatalf("error %T %v, want FieldErrors", err, err)
	}
	var fields []string
	for _, f := range fe {
		fields = append(fields, f.Field)
	}
	want := []string{"bogus", "fields", "keepAlive", "optional", "protocolVersion", "ratio", "server", "tls", "url"}
	if diff := cmp.Diff(want, fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s\n%v", diff, err)
	}
	msg := err.Error()
	for _, s := range []string{"unknown property", "want an int, got a string", "use one of 3.1, 3.1.1", "required"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error lacks %q: %s", s, msg)
		}
	}
	if _, err := schema.Decode(map[string]any{"server": "x", "keepAlive": 1.5}); err == nil {
		t.Error("1.5 accepted as an int")
	}
}

// TestUnmaskableURLs: a secret URL whose password a parser would not see
// as one is refused, and the message never quotes it.
func TestUnmaskableURLs(t *testing.T) {
	s := &connector.Schema{Fields: []connector.Field{{Name: "url", Kind: connector.URL, Secret: true}}}
	for _, u := range []string{"mysql:root:Pw1@h:3306/db", "mysql://root%3APw1@h/db", "mysql:/u:Pw1@h/db", "mysql:///u:Pw1@h/db"} {
		_, err := s.Decode(map[string]any{"url": u})
		if err == nil || strings.Contains(err.Error(), "Pw1") {
			t.Errorf("%s: %v, want a refusal that does not quote it", u, err)
		}
	}
	for _, u := range []string{"mysql://root:pw@h/db", "sqlite:/tmp/a@b.db", "tcp://h:1883", "mysql://u@h/db"} {
		if _, err := s.Decode(map[string]any{"url": u}); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}
