package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/store/sqlite"
)

func TestMountedBehindAuth(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := connection.New(ctx, st, &connection.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ts := httptest.NewServer(newService(m, "s3cret"))
	defer ts.Close()

	do := func(method, path, token, body string) (int, string) {
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := do("GET", "/healthz", "", ""); code != 200 {
		t.Errorf("own route: %d", code)
	}
	if code, _ := do("GET", "/api/connections", "", ""); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _ := do("GET", "/api/connections", "wrong", ""); code != 401 {
		t.Errorf("wrong token: %d, want 401", code)
	}
	url := "sqlite:" + filepath.Join(t.TempDir(), "d.db")
	if code, body := do("POST", "/api/connections", "s3cret", `{"id":"db","typ":"sql","props":{"url":"`+url+`"}}`); code != 201 {
		t.Fatalf("create under /api: %d %s", code, body)
	}
	if code, body := do("GET", "/api/connections/db", "s3cret", ""); code != 200 || !strings.Contains(body, `"id":"db"`) {
		t.Errorf("get under /api: %d %s", code, body)
	}
	if code, body := do("GET", "/api/metadata/connections", "s3cret", ""); code != 200 || !strings.Contains(body, `"type":"sql"`) {
		t.Errorf("types under /api: %d %s", code, body)
	}
	if _, err := m.Get("db"); err != nil {
		t.Errorf("the Manager does not have what the API created: %v", err)
	}
}
