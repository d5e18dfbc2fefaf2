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
		"nil type":   func(r *registry.Registry) { r.Register("x", nil) },
		"nil schema": func(r *registry.Registry) { r.Register("x", typ{}) },
		"twice":      func(r *registry.Registry) { r.Register("x", typ{s}); r.Register("x", typ{s}) },
	}
	for name, fn := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				msg, _ := recover().(string)
				if !strings.HasPrefix(msg, "registry: ") {
					t.Errorf("panic %q, want a registry message", msg)
				}
			}()
			fn(&registry.Registry{})
		})
	}
}
