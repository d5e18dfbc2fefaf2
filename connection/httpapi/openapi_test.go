package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

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
	if strings.HasSuffix(req.URL.Path, "/openapi.json") {
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
