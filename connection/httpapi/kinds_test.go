package httpapi_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store"
	"github.com/connkit/connkit/store/memory"
)

// errStore fails every Create with err.
type errStore struct {
	store.Store
	err error
}

func (s errStore) Create(context.Context, store.Record) (store.Record, error) {
	return store.Record{}, s.err
}

// TestServerSideKinds covers the kinds a client cannot cause by its body:
// internal (500), unavailable (502) and deadline_exceeded (504).
func TestServerSideKinds(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		close  bool
		status int
		code   string
	}{
		{"store fails", errors.New("disk I/O error"), false, 500, "internal"},
		{"store times out", context.DeadlineExceeded, false, 504, "deadline_exceeded"},
		{"manager closed", nil, true, 502, "unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := &registry.Registry{}
			reg.Register("fake", connectortest.NewFake())
			m, err := connection.New(context.Background(), errStore{memory.New(), tc.err}, &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if tc.close {
				m.Close()
			}
			ts := httptest.NewServer(httpapi.New(m, &httpapi.Options{Logger: slog.New(slog.DiscardHandler)}))
			defer ts.Close()
			s := &server{t: t, url: ts.URL, m: m}
			e := wantError(t, s.do("POST", "/connections", valid), tc.status, tc.code)
			if strings.Contains(e.Error, "hunter2") {
				t.Errorf("error quotes the password: %s", e.Error)
			}
		})
	}
}

// TestPanicIsJSON500: a panic below the handler still answers in JSON.
func TestPanicIsJSON500(t *testing.T) {
	reg := &registry.Registry{}
	reg.Register("fake", connectortest.NewFake())
	m, err := connection.New(context.Background(), panicStore{memory.New(), new(bool)}, &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ts := httptest.NewServer(httpapi.New(m, &httpapi.Options{Logger: slog.New(slog.DiscardHandler)}))
	defer ts.Close()
	s := &server{t: t, url: ts.URL, m: m}
	wantError(t, s.do("POST", "/connections", valid), http.StatusInternalServerError, "internal")
	// The id is not left half-created: the next create goes through.
	if r := s.do("POST", "/connections", valid); r.status != 201 {
		t.Fatalf("create after a store panic: %d %s", r.status, r.body)
	}
}

// panicStore panics on its first Create.
type panicStore struct {
	store.Store
	panicked *bool
}

func (p panicStore) Create(ctx context.Context, r store.Record) (store.Record, error) {
	if !*p.panicked {
		*p.panicked = true
		panic("boom")
	}
	return p.Store.Create(ctx, r)
}
