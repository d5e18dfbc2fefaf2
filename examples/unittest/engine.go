// Package unittest shows how a stream engine's own code is unit-tested on
// connkit: the memory store, a private registry and connectortest.Fake, so
// no broker or database is needed and no global state is touched. See
// engine_test.go.
package unittest

import (
	"context"
	"fmt"
	"sync"

	"github.com/connkit/connkit/connection"
)

// Rule reads from one named connection.
type Rule struct {
	Name       string
	Connection string
}

// Engine runs rules, each attached to its shared connection.
type Engine struct {
	m       *connection.Manager
	mu      sync.Mutex
	running map[string]Rule
}

// NewEngine returns an engine whose rules use the connections of m.
func NewEngine(m *connection.Manager) *Engine {
	return &Engine{m: m, running: map[string]Rule{}}
}

func ref(r Rule) string { return r.Name + "/source" }

// Start attaches r to its connection and returns the shared client.
func (e *Engine) Start(ctx context.Context, r Rule) (any, error) {
	client, err := e.m.Attach(ctx, r.Connection, ref(r))
	if err != nil {
		return nil, fmt.Errorf("rule %s: %w", r.Name, err)
	}
	e.mu.Lock()
	e.running[r.Name] = r
	e.mu.Unlock()
	return client, nil
}

// Stop detaches r. Stopping a rule twice is harmless.
func (e *Engine) Stop(name string) {
	e.mu.Lock()
	r, ok := e.running[name]
	delete(e.running, name)
	e.mu.Unlock()
	if ok {
		e.m.Detach(r.Connection, ref(r))
	}
}
