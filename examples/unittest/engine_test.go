package unittest

import (
	"context"
	"errors"
	"testing"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// newManager is all the setup a unit test needs: no broker, no database.
func newManager(t *testing.T) *connection.Manager {
	t.Helper()
	reg := &registry.Registry{} // private: the global registry is untouched
	reg.Register("fake", connectortest.NewFake())
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestRulesShareAndHoldTheirConnection(t *testing.T) {
	ctx := context.Background()
	m := newManager(t)
	if _, err := m.Create(ctx, connection.Spec{ID: "bus", Type: "fake", Props: map[string]any{"addr": "broker"}}); err != nil {
		t.Fatal(err)
	}
	e := NewEngine(m)
	c1, err := e.Start(ctx, Rule{Name: "r1", Connection: "bus"})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := e.Start(ctx, Rule{Name: "r2", Connection: "bus"})
	if err != nil {
		t.Fatal(err)
	}
	if c1.(*connectortest.FakeClient).Conn() != c2.(*connectortest.FakeClient).Conn() {
		t.Error("two rules got two live connections for one connection")
	}
	// While rules run, the connection cannot be deleted.
	if err := m.Delete(ctx, "bus", connection.Tag{}); !errors.Is(err, connection.ErrInUse) {
		t.Fatalf("Delete while rules run: %v, want ErrInUse", err)
	}
	e.Stop("r1")
	e.Stop("r1")
	if in, _ := m.Get("bus"); in.RefCount != 1 || in.Refs[0] != "r2/source" {
		t.Errorf("refs after stopping r1: %v", in.Refs)
	}
	e.Stop("r2")
	if err := m.Delete(ctx, "bus", connection.Tag{}); err != nil {
		t.Fatalf("Delete after every rule stopped: %v", err)
	}
}

func TestRuleOnMissingConnection(t *testing.T) {
	e := NewEngine(newManager(t))
	_, err := e.Start(context.Background(), Rule{Name: "r1", Connection: "nope"})
	if !errors.Is(err, connection.ErrNotFound) {
		t.Fatalf("Start: %v, want ErrNotFound", err)
	}
}
