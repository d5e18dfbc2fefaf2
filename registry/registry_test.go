package registry_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/registry"
)

type typ struct{ schema *connector.Schema }

func (t typ) Schema() *connector.Schema { return t.schema }
func (typ) Open(connector.Props, connector.Events) (connector.Conn, error) {
	return nil, context.Canceled
}

var s = &connector.Schema{}

func TestZeroValue(t *testing.T) {
	var r registry.Registry
	if _, ok := r.Lookup("x"); ok {
		t.Error("empty registry found a type")
	}
	if len(r.List()) != 0 {
		t.Error("empty registry lists types")
	}
	r.Register("b", typ{s})
	r.Register("a", typ{s})
	if _, ok := r.Lookup("a"); !ok {
		t.Error("Lookup of a registered type failed")
	}
	if diff := cmp.Diff([]string{"a", "b"}, r.Names()); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
	if l := r.List(); l[0].Name != "a" || l[0].Schema != s {
		t.Errorf("List %v", l)
	}
}

func TestRegisterPanics(t *testing.T) {
	cases := map[string]func(r *registry.Registry){
		"empty name": func(r *registry.Registry) { r.Register("", typ{s}) },
		"slash":      func(r *registry.Registry) { r.Register("x/y", typ{s}) },
		"nil type":   func(r *registry.Registry) { r.Register("x", nil) },
		"nil schema": func(r *registry.Registry) { r.Register("x", typ{}) },
		"twice":      func(r *registry.Registry) { r.Register("x", typ{s}); r.Register("x", typ{s}) },
	}
	// A schema that cannot work as declared is a programmer's error too,
	// found at start-up rather than as a default that silently becomes nil.
	for name, f := range map[string]connector.Field{
		"default of the wrong kind": {Name: "keepAlive", Kind: connector.Int, Default: "30s"},
		"default not allowed":       {Name: "v", Kind: connector.String, Default: "5", Allowed: []any{"3.1", "3.1.1"}},
		"allowed of the wrong kind": {Name: "qos", Kind: connector.Int, Allowed: []any{0, "one"}},
		"unknown kind":              {Name: "x", Kind: "duration"},
		"no name":                   {Kind: connector.String},
		"secret int":                {Name: "pin", Kind: connector.Int, Secret: true},
		"secret keys on a string":   {Name: "h", Kind: connector.String, SecretKeys: []string{"A"}},
		"required with a default":   {Name: "port", Kind: connector.Int, Required: true, Default: 1},
		"secret string endpoint":    {Name: "token", Kind: connector.String, Secret: true, Endpoint: true},
	} {
		f := f
		cases[name] = func(r *registry.Registry) { r.Register("x", typ{&connector.Schema{Fields: []connector.Field{f}}}) }
	}
	cases["a name twice"] = func(r *registry.Registry) {
		r.Register("x", typ{&connector.Schema{Fields: []connector.Field{{Name: "a", Kind: connector.Int}, {Name: "a", Kind: connector.String}}}})
	}
	for name, fn := range cases {
		t.Run(name, func(t *testing.T) {
			r := &registry.Registry{}
			defer func() {
				msg, _ := recover().(string)
				if !strings.HasPrefix(msg, "registry: ") {
					t.Errorf("panic %q, want a registry message", msg)
				}
				if _, ok := r.Lookup("x"); ok && name != "twice" {
					t.Error("the bad type was registered")
				}
			}()
			fn(r)
		})
	}
}

// TestValidSchema: a schema using every feature passes.
func TestValidSchema(t *testing.T) {
	ok := &connector.Schema{Fields: []connector.Field{
		{Name: "keepAlive", Kind: connector.Int, Default: 30},
		{Name: "v", Kind: connector.String, Default: "3.1.1", Allowed: []any{"3.1", "3.1.1"}},
		{Name: "o", Kind: connector.Map, SecretKeys: []string{"Password"}, EndpointKeys: []string{"CaFile"}},
		{Name: "u", Kind: connector.URL, Secret: true, Required: true},
	}}
	if err := ok.Validate(); err != nil {
		t.Error(err)
	}
}
