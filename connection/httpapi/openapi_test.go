package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
	"github.com/connkit/connkit/connector"
	_ "github.com/connkit/connkit/connector/all"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
)

// validators caches one validator per served document.
var validators sync.Map // document text -> validator.Validator

// validate checks, against the document the server serves, the response
// to req, and req itself if the server accepted it (a test that sends a
// bad request on purpose gets a 4xx: only the answer must be as
// documented). An event stream's body is not checked.
func (s *server) validate(req *http.Request, reqBody string, res *http.Response, resBody []byte) {
	s.t.Helper()
	// The page's files are not API; TestPageFiles checks them.
	if strings.HasSuffix(req.URL.Path, "/openapi.json") || req.URL.Path == "/ui" || strings.HasPrefix(req.URL.Path, "/ui/") {
		return
	}
	// A route or method that does not exist has no operation to check
	// against; wantError checks its problem members.
	if res.StatusCode == http.StatusMethodNotAllowed || res.StatusCode == http.StatusNotFound && bytes.Contains(resBody, []byte(`"no route `)) {
		return
	}
	v := s.validator()
	if res.StatusCode < 300 {
		r := req.Clone(req.Context())
		r.Body = io.NopCloser(strings.NewReader(reqBody))
		if ok, errs := v.ValidateHttpRequest(r); !ok {
			for _, e := range errs {
				s.t.Errorf("%s %s: the request is not as documented: %s %s", req.Method, req.URL, e.Message, e.Reason)
			}
		}
	}
	if ct := res.Header.Get("Content-Type"); strings.HasPrefix(ct, "text/event-stream") {
		return
	}
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(strings.NewReader(reqBody))
	res.Body = io.NopCloser(bytes.NewReader(resBody))
	if ok, errs := v.ValidateHttpResponse(r, res); !ok {
		for _, e := range errs {
			s.t.Errorf("%s %s: the %d answer is not as documented: %s %s\n%s", req.Method, req.URL, res.StatusCode, e.Message, e.Reason, resBody)
		}
	}
}

// validator returns the validator of the document the server serves.
func (s *server) validator() validator.Validator {
	s.t.Helper()
	res, err := http.Get(s.url + "/openapi.json")
	if err != nil {
		s.t.Fatal(err)
	}
	doc, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if v, ok := validators.Load(string(doc)); ok {
		return v.(validator.Validator)
	}
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		s.t.Fatalf("GET /openapi.json: %v", err)
	}
	v, errs := validator.NewValidator(d)
	if len(errs) > 0 {
		s.t.Fatalf("GET /openapi.json: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			s.t.Errorf("GET /openapi.json is not a valid OpenAPI document: %s %s", e.Message, e.Reason)
		}
		s.t.FailNow()
	}
	validators.Store(string(doc), v)
	return v
}

// TestOpenAPIDocument: the document is OpenAPI 3.1, names every route,
// and has each registered type's props, secrets write-only.
func TestOpenAPIDocument(t *testing.T) {
	s := newServer(t, nil)
	s.validator()
	r := s.do("GET", "/openapi.json", "")
	var doc struct {
		OpenAPI    string                    `json:"openapi"`
		Paths      map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	r.json(t, &doc)
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	for _, p := range []string{"/connections", "/connections/{id}", "/connections/{id}/history", "/connections/{id}/reconnect",
		"/connections/{id}/check", "/metadata/connections", "/metadata/sinks/connection/{type}", "/metadata/sources/connection/{type}",
		"/events", "/livez", "/readyz", "/openapi.json"} {
		if doc.Paths[p] == nil {
			t.Errorf("no path %s", p)
		}
	}
	fake := string(doc.Components.Schemas["Props_fake"])
	if !strings.Contains(fake, `"password":{"oneOf":[{"description":"a secret","format":"password","type":"string","writeOnly":true}`) {
		t.Errorf("the fake type's props: %s", fake)
	}
}

// TestOpenAPIBuiltinTypes: with every built-in type registered, the
// document is valid, and a create of each type with its required props
// validates against it, while one with an unknown prop does not.
func TestOpenAPIBuiltinTypes(t *testing.T) {
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: registry.Default, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s := &server{t: t, url: listen(t, httpapi.New(m, nil)), m: m}
	v := s.validator()
	if len(m.Types()) < 6 {
		t.Fatalf("%d types registered", len(m.Types()))
	}
	for _, ty := range m.Types() {
		props := map[string]any{}
		for _, f := range ty.Schema.Fields {
			if !f.Required {
				continue
			}
			switch {
			case len(f.Allowed) > 0:
				props[f.Name] = f.Allowed[0]
			case f.Kind == connector.Int:
				props[f.Name] = 1
			case f.Kind == connector.Bool:
				props[f.Name] = true
			default:
				props[f.Name] = "tcp://127.0.0.1:1"
			}
		}
		for _, tc := range []struct {
			extra string
			valid bool
		}{{"", true}, {"notAProp", false}} {
			p := maps.Clone(props)
			if tc.extra != "" {
				p[tc.extra] = "x"
			}
			body, _ := json.Marshal(map[string]any{"id": "c1", "typ": ty.Name, "props": p})
			req, _ := http.NewRequest("POST", s.url+"/connections", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if ok, errs := v.ValidateHttpRequest(req); ok != tc.valid {
				t.Errorf("%s %s: valid %v, want %v: %v", ty.Name, body, ok, tc.valid, errs)
			}
		}
	}
}
