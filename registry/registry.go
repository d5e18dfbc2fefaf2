// Package registry maps connection type names to their connector.Type.
//
// Connector packages call Register from init, filling Default. A zero
// Registry is ready to use, so a test can build a private one with a fake
// type and touch no global state.
//
// # Names
//
// A name is used in URLs (/metadata/sinks/connection/{type}) and in
// stored records: letters, digits, '.', '_' and '-'. The built-in types
// have plain names (mqtt, sql, ...). A type written outside this module
// qualifies its name with its organisation or module, such as acme.redis,
// so that it never meets a built-in or another module's type; a name
// registered twice panics at start-up, naming the type that holds it.
package registry

import (
	"fmt"
	"sort"
	"sync"

	"github.com/connkit/connkit/connector"
)

// Registry is a set of connection types by name. It is safe for concurrent
// use; the zero value is empty and ready.
type Registry struct {
	mu    sync.RWMutex
	types map[string]connector.Type
}

// Default is the registry that connector packages fill from init.
var Default = &Registry{}

// Register adds t to Default under name. It panics if name is empty, t is
// nil, its schema is invalid, or name is already registered, as
// sql.Register does: each is a programming error found at start-up.
func Register(name string, t connector.Type) { Default.Register(name, t) }

// Register adds t under name. It panics if name is empty, t is nil, its
// schema is nil or invalid (connector.Schema.Validate), or name is already
// registered.
func (r *Registry) Register(name string, t connector.Type) {
	if name == "" {
		panic("registry: Register called with an empty type name")
	}
	if !validName(name) {
		panic(fmt.Sprintf("registry: type name %q: use letters, digits, '.', '_' and '-', such as acme.redis", name))
	}
	if t == nil {
		panic(fmt.Sprintf("registry: Register of type %q with a nil connector.Type", name))
	}
	if t.Schema() == nil {
		panic(fmt.Sprintf("registry: Register of type %q whose Schema() is nil", name))
	}
	if err := t.Schema().Validate(); err != nil {
		panic(fmt.Sprintf("registry: Register of type %q: %v", name, err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.types[name]; dup {
		panic(fmt.Sprintf("registry: type %q is registered already (by %T); a type of another module should qualify its name, such as acme.redis", name, r.types[name]))
	}
	if r.types == nil {
		r.types = make(map[string]connector.Type)
	}
	r.types[name] = t
}

func validName(name string) bool {
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return len(name) <= 64
}

// Lookup returns the type registered as name.
func (r *Registry) Lookup(name string) (connector.Type, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.types[name]
	return t, ok
}

// Info describes a registered type.
type Info struct {
	Name   string            `json:"type"`
	Schema *connector.Schema `json:"schema"`
}

// List returns the registered types sorted by name.
func (r *Registry) List() []Info {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Info, 0, len(r.types))
	for n, t := range r.types {
		out = append(out, Info{Name: n, Schema: t.Schema()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names returns the registered type names, sorted.
func (r *Registry) Names() []string {
	l := r.List()
	out := make([]string, len(l))
	for i, t := range l {
		out[i] = t.Name
	}
	return out
}
