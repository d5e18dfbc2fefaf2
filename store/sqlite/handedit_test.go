package sqlite_test

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/sqlite"
)

// TestHandEditedRows: rows edited by hand in the sqlite3 shell (props as
// text, a number for props, a version that is no number, a timestamp in
// another form, an id no route can name) never stop a start: props as
// text are read as JSON, the others load as connections that cannot run,
// saying why, and are mended or deleted through the Manager.
func TestHandEditedRows(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO connections (id, typ, props, version, created_at, updated_at) VALUES ('text', 'fake', '{"addr":"p1"}', 1, '2026-01-01', 'garbage')`,
		`INSERT INTO connections (id, typ, props, version, created_at, updated_at) VALUES ('number', 'fake', 123, 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')`,
		`INSERT INTO connections (id, typ, props, version, created_at, updated_at) VALUES ('version', 'fake', CAST('{"addr":"p1"}' AS BLOB), 'notanint', '', '')`,
		`INSERT INTO connections (id, typ, props, version, created_at, updated_at) VALUES ('bad id', 'fake', CAST('{"addr":"p1"}' AS BLOB), 1, '', '')`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	st, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fake := connectortest.NewFake()
	fake.SetUp("p1", true)
	reg := &registry.Registry{}
	reg.Register("fake", fake)
	m, err := connection.New(ctx, st, &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer m.Close()
	connectortest.WaitState(t, m, "text", connection.StateConnected, 5*time.Second)
	for id, why := range map[string]string{"number": "not JSON text", "version": "not a positive number"} {
		in, err := m.Get(id)
		if err != nil || !in.Permanent || !strings.Contains(in.Err, why) {
			t.Errorf("%s: %+v %v", id, in.Status, err)
		}
	}
	// Mended through the API, by the ETag it shows ("0-0": no
	// incarnation, the version damaged); that tag does not match a
	// record that is not damaged.
	h := httpapi.New(m, &httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	put := func(id, tag string) int {
		req := httptest.NewRequest("PUT", "/connections/"+id, strings.NewReader(`{"typ":"fake","props":{"addr":"p1"}}`))
		req.Header.Set("If-Match", tag)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := put("text", `"0-0"`); code != 412 {
		t.Errorf(`If-Match "0-0" on a sound record: %d`, code)
	}
	if in, _ := m.Get("version"); in.Version != 0 {
		t.Fatalf("the damaged record's version: %d", in.Version)
	}
	if code := put("version", `"0-0"`); code != 200 {
		t.Fatalf(`mend the version with If-Match "0-0": %d`, code)
	}
	connectortest.WaitState(t, m, "version", connection.StateConnected, 5*time.Second)
	if err := m.Delete(ctx, "number", connection.Tag{}); err != nil {
		t.Errorf("delete: %v", err)
	}
	if n := len(m.List()); n != 2 {
		t.Errorf("%d connections, want text and version", n)
	}
}
