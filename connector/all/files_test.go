package all_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// TestFilePropsThatAreNoFiles: a TLS or key prop of any type that names a
// device, a FIFO or a directory is a 400 naming the prop, at once, at
// create and at check; nothing is read, nothing waits, nothing is stored.
func TestFilePropsThatAreNoFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		typ, field string
		props      func(bad string) map[string]any
	}{
		{"mqtt", "rootCaPath", func(b string) map[string]any { return map[string]any{"server": "ssl://127.0.0.1:1", "rootCaPath": b} }},
		{"mqtt", "certificationPath", func(b string) map[string]any {
			return map[string]any{"server": "ssl://127.0.0.1:1", "certificationPath": b, "privateKeyPath": b}
		}},
		{"websocket", "rootCaPath", func(b string) map[string]any {
			return map[string]any{"addr": "127.0.0.1:1", "scheme": "wss", "rootCaPath": b}
		}},
		{"httppush", "certificationPath", func(b string) map[string]any {
			return map[string]any{"addr": "127.0.0.1:0", "certificationPath": b, "privateKeyPath": b}
		}},
		{"edgex", "optional", func(b string) map[string]any {
			return map[string]any{"server": "127.0.0.1", "protocol": "ssl", "optional": map[string]any{"CaFile": b}}
		}},
	}
	ctx := context.Background()
	m, err := connection.New(ctx, memory.New(), &connection.Options{Registry: registry.Default, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := check.New(&check.Options{Registry: registry.Default, Timeout: 5 * time.Second})
	for _, tc := range cases {
		for _, bad := range []string{"/dev/zero", "/dev/ptmx", fifo, dir} {
			start := time.Now()
			_, err := m.Create(ctx, connection.Spec{ID: "x", Type: tc.typ, Props: tc.props(bad)})
			var ce *connection.Error
			if !errors.As(err, &ce) || ce.Code != connection.CodeInvalidArgument || !named(ce.Fields, tc.field) || !strings.Contains(err.Error(), "cannot be used") {
				t.Errorf("%s %s=%s: %v, want invalid_argument naming %s", tc.typ, tc.field, bad, err, tc.field)
			}
			_, err = c.Sink(ctx, check.Request{Type: tc.typ, Props: tc.props(bad)})
			if tc.typ != "httppush" && !errors.Is(err, check.ErrInvalid) {
				t.Errorf("check of %s %s=%s: %v, want ErrInvalid", tc.typ, tc.field, bad, err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("%s %s=%s took %v", tc.typ, tc.field, bad, d)
			}
		}
	}
	if l := m.List(); len(l) != 0 {
		t.Errorf("%d connections stored", len(l))
	}
}

func named(fields connector.FieldErrors, name string) bool {
	for _, f := range fields {
		if f.Field == name {
			return true
		}
	}
	return false
}
