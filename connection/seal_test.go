package connection_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

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

	// No key, or another one: a clear error at start, never blank secrets.
	for name, k := range map[string][]byte{"no key": nil, "wrong key": bytes.Repeat([]byte{8}, 32)} {
		_, err := openWithKey(t, st, k)
		if err == nil {
			t.Fatalf("%s: New succeeded", name)
		}
		if !strings.Contains(err.Error(), `"a"`) || !strings.Contains(err.Error(), "SecretKey") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := openWithKey(t, st, []byte("short")); err == nil || !strings.Contains(err.Error(), "16, 24 or 32 bytes") {
		t.Errorf("a 5-byte key: %v", err)
	}
}
