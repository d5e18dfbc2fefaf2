package connection_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store"
	"github.com/connkit/connkit/store/memory"
)

func openWithKey(t *testing.T, st store.Store, key []byte) (*connection.Manager, error) {
	reg := &registry.Registry{}
	reg.Register("fake", connectortest.NewFake())
	m, err := connection.New(ctx, st, &connection.Options{Registry: reg, SecretKey: key, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		t.Cleanup(func() { m.Close() })
	}
	return m, err
}

func TestSecretsSealedAtRest(t *testing.T) {
	st := memory.New()
	key := bytes.Repeat([]byte{7}, 32)
	// A record from before sealing was turned on: read as it is.
	if _, err := st.Create(ctx, store.Record{ID: "old", Type: "fake", Props: []byte(`{"addr":"p1","password":"plain-old"}`)}); err != nil {
		t.Fatal(err)
	}
	m, err := openWithKey(t, st, key)
	if err != nil {
		t.Fatal(err)
	}
	props := map[string]any{"addr": "p1", "password": "hunter2", "url": "mysql://u:s3cret@h/db",
		"header": map[string]any{"Authorization": "Bearer tok3n", "X": "plain"}}
	if _, err := m.Create(ctx, connection.Spec{ID: "a", Type: "fake", Props: props}); err != nil {
		t.Fatal(err)
	}
	rec, _ := st.Get(ctx, "a")
	for _, s := range []string{"hunter2", "s3cret", "tok3n"} {
		if bytes.Contains(rec.Props, []byte(s)) {
			t.Errorf("%q is stored in clear: %s", s, rec.Props)
		}
	}
	if !bytes.Contains(rec.Props, []byte(`"X":"plain"`)) || !bytes.Contains(rec.Props, []byte(`"addr":"p1"`)) {
		t.Errorf("props that are not secret should stay readable: %s", rec.Props)
	}
	// Running connections get the secrets in clear.
	c, _ := m.Attach(ctx, "a", "r")
	if pw := c.(*connectortest.FakeClient).Conn().Props().String("password"); pw != "hunter2" {
		t.Errorf("live password %q", pw)
	}
	m.Detach("a", "r")
	m.Close()

	// The same key reads them back.
	m2, err := openWithKey(t, st, key)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"a": "hunter2", "old": "plain-old"} {
		c, _ := m2.Attach(ctx, id, "r")
		if pw := c.(*connectortest.FakeClient).Conn().Props().String("password"); pw != want {
			t.Errorf("%s after reopening: password %q, want %q", id, pw, want)
		}
		m2.Detach(id, "r")
	}
	m2.Close()

	// No key, or another one: the connection cannot run and says why,
	// without its secrets (never blank ones); the others run.
	for name, k := range map[string][]byte{"no key": nil, "wrong key": bytes.Repeat([]byte{8}, 32)} {
		m, err := openWithKey(t, st, k)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		in, _ := m.Get("a")
		if in.State != connection.StateDisconnected || !in.Permanent || !strings.Contains(in.Err, "SecretKey") {
			t.Errorf("%s: %+v", name, in.Status)
		}
		if _, ok := in.Props["password"]; ok || in.Props["addr"] != "p1" {
			t.Errorf("%s: props %v", name, in.Props)
		}
		if _, err := m.Attach(ctx, "old", "r"); err != nil {
			t.Errorf("%s: the record without sealed secrets: %v", name, err)
		}
		m.Detach("old", "r")
		m.Close()
	}
	if _, err := openWithKey(t, st, []byte("short")); err == nil || !strings.Contains(err.Error(), "16, 24 or 32 bytes") {
		t.Errorf("a 5-byte key: %v", err)
	}
}

// brokenStore holds a record that the store itself cannot read.
type brokenStore struct{ store.Store }

func (s brokenStore) List(ctx context.Context) ([]store.Record, error) {
	recs, err := s.Store.List(ctx)
	return append(recs, store.Record{ID: "damaged", Version: 1, Err: errors.New("value is not JSON")}), err
}

// TestOneBadRecordNeverStopsTheHouse: records broken in every way a
// store can hold them load as connections that cannot run, each saying
// why, with an event; the good one runs; each broken one can be updated
// back to health or deleted.
func TestOneBadRecordNeverStopsTheHouse(t *testing.T) {
	st := memory.New()
	key := bytes.Repeat([]byte{7}, 32)
	m, err := openWithKey(t, st, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, connection.Spec{ID: "sealed", Type: "fake", Props: map[string]any{"addr": "p1", "password": "pw"}}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	for id, props := range map[string]string{
		"good":       `{"addr":"p1"}`,
		"not-json":   `{"addr":`,
		"an-array":   `[1,2]`,
		"deep":       strings.Repeat("[", 100) + strings.Repeat("]", 100),
		"bad-props":  `{"addr":"p1","mode":"z"}`,
		"object-pw":  `{"addr":"p1","password":{"x":1}}`,
		"looks-held": `{"addr":"connkit:sealed:v1:AAAA","url":"x"}`,
		"fake-seal":  `{"addr":"p1","password":"connkit:sealed:v1:AAAA"}`,
	} {
		if _, err := st.Create(ctx, store.Record{ID: id, Type: "fake", Props: []byte(props)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Create(ctx, store.Record{ID: "no-type", Type: "gone", Props: []byte(`{"password":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	// Another key: "sealed" cannot be opened.
	m, err = openWithKey(t, brokenStore{st}, bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	evs := sinceStart(t, m)
	seen := map[string]bool{}
	for len(seen) < 9 {
		select {
		case ev := <-evs:
			if ev.Kind == connection.EventStatus && ev.Status.Permanent {
				seen[ev.ID] = true
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("events of broken records: %v", seen)
		}
	}
	for id, why := range map[string]string{
		"sealed": "SecretKey", "not-json": "not a JSON object", "an-array": "not a JSON object",
		"deep": "nested", "bad-props": "mode", "object-pw": "password", "fake-seal": "SecretKey",
		"no-type": "unknown type", "damaged": "value is not JSON",
	} {
		in, err := m.Get(id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if in.State != connection.StateDisconnected || !in.Permanent || !strings.Contains(in.Err, why) {
			t.Errorf("%s: %+v, want a permanent error naming %q", id, in.Status, why)
		}
	}
	// A non-secret value that looks sealed is only a value.
	if in, _ := m.Get("looks-held"); in.Permanent {
		t.Errorf("looks-held: %+v", in.Status)
	}
	if _, err := m.Attach(ctx, "good", "r"); err != nil {
		t.Errorf("good: %v", err)
	}
	m.Detach("good", "r")
	// Fixed by an update (its secret given again), or deleted.
	if _, err := m.Update(ctx, connection.Spec{ID: "sealed", Type: "fake", Props: map[string]any{"addr": "p1", "password": "******"}}, connection.Tag{}); err == nil {
		t.Error("a mask restored a secret that could not be opened")
	}
	if _, err := m.Update(ctx, connection.Spec{ID: "sealed", Type: "fake", Props: map[string]any{"addr": "p1", "password": "new"}}, connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, "sealed", "r"); err != nil {
		t.Errorf("sealed after the update: %v", err)
	}
	m.Detach("sealed", "r")
	for _, id := range []string{"not-json", "an-array", "deep", "bad-props", "object-pw", "fake-seal", "no-type"} {
		if err := m.Delete(ctx, id, connection.Tag{}); err != nil {
			t.Errorf("delete %s: %v", id, err)
		}
	}
}

// TestSecretByPlace: a number or a bool in a secret's place is a secret
// as a string is: masked, sealed, scrubbed, bound to its endpoint; an
// object there is refused, naming it; so is a secret that looks sealed.
func TestSecretByPlace(t *testing.T) {
	st := memory.New()
	m, err := openWithKey(t, st, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	in, err := m.Create(ctx, connection.Spec{ID: "n", Type: "fake", Props: map[string]any{"addr": "p1",
		"password": json.Number("73105291"), "header": map[string]any{"Authorization": true, "X": 5}}})
	if err != nil {
		t.Fatal(err)
	}
	if in.Props["password"] != "******" || in.Props["header"].(map[string]any)["Authorization"] != "******" {
		t.Errorf("masked: %v", in.Props)
	}
	rec, _ := st.Get(ctx, "n")
	if bytes.Contains(rec.Props, []byte("73105291")) || bytes.Contains(rec.Props, []byte("true")) {
		t.Errorf("stored in clear: %s", rec.Props)
	}
	c, _ := m.Attach(ctx, "n", "r")
	if pw := c.(*connectortest.FakeClient).Conn().Props().String("password"); pw != "73105291" {
		t.Errorf("live password %q", pw)
	}
	m.Detach("n", "r")
	// Bound to its endpoint: the mask is not carried to another addr.
	if _, err := m.Update(ctx, connection.Spec{ID: "n", Type: "fake", Props: map[string]any{"addr": "p2", "password": "******"}}, connection.Tag{}); !errors.Is(err, connection.ErrInvalidArgument) {
		t.Errorf("the mask to another endpoint: %v", err)
	}
	for name, props := range map[string]map[string]any{
		"an object":    {"addr": "p1", "password": map[string]any{"a": 1}},
		"a list":       {"addr": "p1", "header": map[string]any{"Authorization": []any{"a"}}},
		"sealed-alike": {"addr": "p1", "password": "connkit:sealed:v1:AAAA"},
	} {
		_, err := m.Create(ctx, connection.Spec{ID: "bad", Type: "fake", Props: props})
		var ce *connection.Error
		if !errors.As(err, &ce) || ce.Code != connection.CodeInvalidArgument || len(ce.Fields) == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// sinceStart returns the events of m from its first one on: the oldest
// From that is not answered with reset.
func sinceStart(t *testing.T, m *connection.Manager) <-chan connection.Event {
	for n := uint64(64); n > 0; n-- {
		sctx, cancel := context.WithCancel(ctx)
		evs := m.Subscribe(sctx, connection.SubscribeOptions{From: m.LastSeq() - n + 1})
		first := <-evs
		if first.Kind == connection.EventReset {
			cancel()
			continue
		}
		t.Cleanup(cancel)
		out := make(chan connection.Event, 1)
		out <- first
		go func() {
			for ev := range evs {
				select {
				case out <- ev:
				case <-sctx.Done():
					return
				}
			}
		}()
		return out
	}
	t.Fatal("no event since the start")
	return nil
}
