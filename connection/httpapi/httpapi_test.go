package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type server struct {
	t    *testing.T
	url  string
	m    *connection.Manager
	fake *connectortest.Fake
}

func newServer(t *testing.T, opts *httpapi.Options) *server {
	t.Helper()
	fake := connectortest.NewFake()
	reg := &registry.Registry{}
	reg.Register("fake", fake)
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{
		Registry: reg, Logger: slog.New(slog.DiscardHandler),
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(httpapi.New(m, opts))
	t.Cleanup(func() {
		ts.Close()
		m.Close()
	})
	return &server{t: t, url: ts.URL, m: m, fake: fake}
}

// newServerWith serves s's Manager with other options.
func newServerWith(t *testing.T, s *server, opts *httpapi.Options) *server {
	ts := httptest.NewServer(httpapi.New(s.m, opts))
	t.Cleanup(ts.Close)
	return &server{t: t, url: ts.URL, m: s.m, fake: s.fake}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

func (s *server) do(method, path, body string, hdr ...string) response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	s.validate(req, body, res, b)
	return response{res.StatusCode, res.Header, b}
}

type errBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Error  string `json:"error"`
	Code   string `json:"code"`
	Fields []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"fields"`
	Refs []string `json:"refs"`
}

// wantError checks status, JSON content type and code, and returns the body.
func wantError(t *testing.T, r response, status int, code string) errBody {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var e errBody
	r.json(t, &e)
	if e.Code != code || e.Error == "" {
		t.Fatalf("error body %s, want code %s", r.body, code)
	}
	// RFC 9457: the standard members agree with the extension ones.
	if e.Type != "urn:connkit:problem:"+code || e.Title == "" || e.Status != status || e.Detail != e.Error {
		t.Fatalf("problem members of %s", r.body)
	}
	return e
}

func fields(e errBody) []string {
	var out []string
	for _, f := range e.Fields {
		out = append(out, f.Field)
	}
	return out
}

const valid = `{"id":"conn-1","typ":"fake","props":{"addr":"p1","password":"hunter2","retries":5}}`

// TestTagsNeverRepeat: an ETag read before a delete never matches the
// connection created after it with the same id (it did: both were "1").
func TestTagsNeverRepeat(t *testing.T) {
	s := newServer(t, nil)
	if r := s.do("POST", "/connections", valid); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	old := s.do("GET", "/connections/conn-1", "").header.Get("ETag")
	if r := s.do("DELETE", "/connections/conn-1", "", "If-Match", old); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	r := s.do("POST", "/connections", valid)
	if r.status != 201 || r.header.Get("ETag") == old {
		t.Fatalf("create again: %d, ETag %s (the first one's was %s)", r.status, r.header.Get("ETag"), old)
	}
	wantError(t, s.do("PUT", "/connections/conn-1", `{"typ":"fake","props":{"addr":"stale"}}`, "If-Match", old), 412, "version_mismatch")
	wantError(t, s.do("DELETE", "/connections/conn-1", "", "If-Match", old), 412, "version_mismatch")
	var in connection.Info
	s.do("GET", "/connections/conn-1", "").json(t, &in)
	if in.Version != 1 || in.Props["addr"] != "p1" {
		t.Errorf("the new connection after writes with the old tag: %+v", in)
	}
}

func TestCRUD(t *testing.T) {
	s := newServer(t, nil)
	r := s.do("GET", "/connections", "")
	if r.status != 200 || strings.TrimSpace(string(r.body)) != "[]" {
		t.Fatalf("empty list: %d %s", r.status, r.body)
	}
	r = s.do("POST", "/connections", valid)
	if r.status != 201 || r.header.Get("ETag") != `"1-1"` {
		t.Fatalf("create: %d %v %s", r.status, r.header, r.body)
	}
	var in map[string]any
	r.json(t, &in)
	for _, k := range []string{"id", "typ", "props", "status", "err", "statusSince", "refCount", "refs", "version", "incarnation", "createdAt", "updatedAt"} {
		if _, ok := in[k]; !ok {
			t.Errorf("create response lacks %q: %s", k, r.body)
		}
	}
	if strings.Contains(string(r.body), "hunter2") {
		t.Errorf("the password is in the response: %s", r.body)
	}
	if in["props"].(map[string]any)["retries"] != float64(5) {
		t.Errorf("props %v", in["props"])
	}

	waitConnected := func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			var got connection.Info
			s.do("GET", "/connections/conn-1", "").json(t, &got)
			if got.State == connection.StateConnected {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("never connected: %+v", got)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	waitConnected()

	r = s.do("GET", "/connections/conn-1", "")
	if r.status != 200 || r.header.Get("ETag") != `"1-1"` {
		t.Fatalf("get: %d %v", r.status, r.header)
	}
	// The masked password comes back in a PUT and is kept.
	var got connection.Info
	r.json(t, &got)
	body, _ := json.Marshal(map[string]any{"typ": "fake", "props": got.Props})
	r = s.do("PUT", "/connections/conn-1", string(body), "If-Match", `"1-1"`)
	if r.status != 200 || r.header.Get("ETag") != `"1-2"` {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	c, err := s.m.Attach(context.Background(), "conn-1", "check")
	if err != nil {
		t.Fatal(err)
	}
	if pw := c.(*connectortest.FakeClient).Conn().Props().String("password"); pw != "hunter2" {
		t.Errorf("password after a PUT of the mask: %q", pw)
	}
	s.m.Detach("conn-1", "check")

	r = s.do("PUT", "/connections/conn-1", `{"id":"conn-1","typ":"fake","props":{"addr":"p2"}}`)
	if r.status != 200 {
		t.Fatalf("update with the same id: %d %s", r.status, r.body)
	}
	// A list of tags matches if any strong one is the connection's; *
	// any. A bare version, as earlier releases gave, is no tag of ours.
	r = s.do("PUT", "/connections/conn-1", `{"typ":"fake","props":{"addr":"p2"}}`, "If-Match", `W/"1-3", "stale", "3", "1-3"`)
	if r.status != 200 || r.header.Get("ETag") != `"1-4"` {
		t.Fatalf("update with a list of tags: %d %s", r.status, r.body)
	}
	r = s.do("PUT", "/connections/conn-1", `{"typ":"fake","props":{"addr":"p2"}}`, "If-Match", `*`)
	if r.status != 200 {
		t.Fatalf("update with If-Match *: %d %s", r.status, r.body)
	}
	wantError(t, s.do("DELETE", "/connections/conn-1", "", "If-Match", `"5"`), 412, "version_mismatch")
	r = s.do("DELETE", "/connections/conn-1", "", "If-Match", `"1-5"`)
	if r.status != 204 || len(r.body) != 0 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	wantError(t, s.do("GET", "/connections/conn-1", ""), 404, "not_found")
}

func TestListSortedAndMetadata(t *testing.T) {
	s := newServer(t, nil)
	for _, id := range []string{"b", "C", "a"} {
		if r := s.do("POST", "/connections", `{"id":"`+id+`","typ":"fake","props":{"addr":"x"}}`); r.status != 201 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	var l []connection.Info
	s.do("GET", "/connections", "").json(t, &l)
	var ids []string
	for _, in := range l {
		ids = append(ids, in.ID)
	}
	if diff := cmp.Diff([]string{"C", "a", "b"}, ids); diff != "" {
		t.Errorf("list order (-want +got):\n%s", diff)
	}
	var types []struct {
		Type   string `json:"type"`
		Schema struct {
			Props []struct {
				Name   string `json:"name"`
				Secret bool   `json:"secret"`
			} `json:"props"`
		} `json:"schema"`
	}
	r := s.do("GET", "/metadata/connections", "")
	r.json(t, &types)
	if len(types) != 1 || types[0].Type != "fake" {
		t.Fatalf("metadata: %s", r.body)
	}
	secret := map[string]bool{}
	for _, p := range types[0].Schema.Props {
		secret[p.Name] = p.Secret
	}
	if !secret["password"] || secret["addr"] {
		t.Errorf("secret marks: %v", secret)
	}
}

func TestErrors(t *testing.T) {
	s := newServer(t, &httpapi.Options{MaxBodyBytes: 4096})
	if r := s.do("POST", "/connections", valid); r.status != 201 {
		t.Fatal(r.status)
	}
	cases := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code                     string
		fields                   []string
	}{
		{"malformed JSON", "POST", "/connections", `{"id":`, nil, 400, "invalid_argument", nil},
		{"bad JSON syntax", "POST", "/connections", `{"id" "a"}`, nil, 400, "invalid_argument", nil},
		{"empty body", "POST", "/connections", ``, nil, 400, "invalid_argument", nil},
		{"array body", "POST", "/connections", `[1]`, nil, 400, "invalid_argument", nil},
		{"trailing data", "POST", "/connections", `{"id":"x","typ":"fake","props":{"addr":"a"}} {}`, nil, 400, "invalid_argument", nil},
		{"unknown field", "POST", "/connections", `{"id":"x","type":"fake"}`, nil, 400, "invalid_argument", []string{"type"}},
		// Keys are exact and given once: an auth layer that reads the body
		// sees the id that is used.
		{"key of another case", "POST", "/connections", `{"ID":"x","typ":"fake","props":{"addr":"a"}}`, nil, 400, "invalid_argument", []string{"ID"}},
		{"key twice", "POST", "/connections", `{"id":"x","typ":"fake","props":{"addr":"a"},"id":"y"}`, nil, 400, "invalid_argument", []string{"id"}},
		{"prop twice", "POST", "/connections", `{"id":"x","typ":"fake","props":{"addr":"a","addr":"b"}}`, nil, 400, "invalid_argument", []string{"props.addr"}},
		{"nested key twice", "PUT", "/connections/conn-1", `{"typ":"fake","props":{"addr":"a","header":{"A":"1","A":"2"}}}`, nil, 400, "invalid_argument", []string{"props.header.A"}},
		{"check key twice", "POST", "/metadata/sinks/connection/fake", `{"addr":"a","addr":"b"}`, nil, 400, "invalid_argument", []string{"addr"}},
		{"props not object", "POST", "/connections", `{"id":"x","typ":"fake","props":[]}`, nil, 400, "invalid_argument", []string{"props"}},
		{"id not string", "POST", "/connections", `{"id":5,"typ":"fake","props":{}}`, nil, 400, "invalid_argument", []string{"id"}},
		{"oversized", "POST", "/connections", `{"id":"x","typ":"fake","props":{"addr":"` + strings.Repeat("a", 5000) + `"}}`, nil, 413, "body_too_large", nil},
		{"bad id chars", "POST", "/connections", `{"id":"a b","typ":"fake","props":{"addr":"a"}}`, nil, 400, "invalid_argument", []string{"id"}},
		{"bad id in URL", "GET", "/connections/a.b", ``, nil, 400, "invalid_argument", []string{"id"}},
		{"escaped id in URL", "DELETE", "/connections/a%2Fb", ``, nil, 400, "invalid_argument", []string{"id"}},
		{"unknown type", "POST", "/connections", `{"id":"x","typ":"kafka","props":{}}`, nil, 400, "invalid_argument", []string{"typ"}},
		{"missing type", "POST", "/connections", `{"id":"x","props":{}}`, nil, 400, "invalid_argument", []string{"typ"}},
		{"bad props", "POST", "/connections", `{"id":"x","typ":"fake","props":{"addr":1,"nope":1}}`, nil, 400, "invalid_argument", []string{"addr", "nope"}},
		{"exists", "POST", "/connections", valid, nil, 409, "already_exists", nil},
		{"get missing", "GET", "/connections/nope", ``, nil, 404, "not_found", nil},
		{"put missing", "PUT", "/connections/nope", `{"typ":"fake","props":{"addr":"a"}}`, nil, 404, "not_found", nil},
		{"delete missing", "DELETE", "/connections/nope", ``, nil, 404, "not_found", nil},
		{"body id differs", "PUT", "/connections/conn-1", `{"id":"conn-2","typ":"fake","props":{"addr":"a"}}`, nil, 400, "invalid_argument", []string{"id"}},
		{"stale If-Match put", "PUT", "/connections/conn-1", `{"typ":"fake","props":{"addr":"a"}}`, []string{"If-Match", `"7"`}, 412, "version_mismatch", nil},
		{"stale If-Match delete", "DELETE", "/connections/conn-1", ``, []string{"If-Match", `"7"`}, 412, "version_mismatch", nil},
		{"garbage If-Match", "PUT", "/connections/conn-1", `{"typ":"fake","props":{"addr":"a"}}`, []string{"If-Match", `abc`}, 400, "invalid_argument", []string{"If-Match"}},
		// RFC 9110: a well-formed tag that does not match is 412, and a
		// weak tag never matches (strong comparison); only a malformed
		// header is 400.
		{"opaque If-Match", "PUT", "/connections/conn-1", `{"typ":"fake","props":{"addr":"a"}}`, []string{"If-Match", `"stale-0"`}, 412, "version_mismatch", nil},
		{"weak If-Match of the version", "PUT", "/connections/conn-1", `{"typ":"fake","props":{"addr":"a"}}`, []string{"If-Match", `W/"1"`}, 412, "version_mismatch", nil},
		{"weak If-Match delete", "DELETE", "/connections/conn-1", ``, []string{"If-Match", `W/"1"`}, 412, "version_mismatch", nil},
		{"list of stale tags", "DELETE", "/connections/conn-1", ``, []string{"If-Match", `"5", "6"`}, 412, "version_mismatch", nil},
		{"unquoted If-Match", "PUT", "/connections/conn-1", `{"typ":"fake","props":{"addr":"a"}}`, []string{"If-Match", `1`}, 400, "invalid_argument", []string{"If-Match"}},
		{"unterminated If-Match", "DELETE", "/connections/conn-1", ``, []string{"If-Match", `"1`}, 400, "invalid_argument", []string{"If-Match"}},
		{"If-Match without a comma", "DELETE", "/connections/conn-1", ``, []string{"If-Match", `"1" "2"`}, 400, "invalid_argument", []string{"If-Match"}},
		{"star in a list", "DELETE", "/connections/conn-1", ``, []string{"If-Match", `*, "1"`}, 400, "invalid_argument", []string{"If-Match"}},
		{"empty If-Match", "DELETE", "/connections/conn-1", ``, []string{"If-Match", ` `}, 400, "invalid_argument", []string{"If-Match"}},
		{"If-Match on a missing id", "DELETE", "/connections/nope", ``, []string{"If-Match", `"1"`}, 404, "not_found", nil},
		{"wrong method", "PATCH", "/connections/conn-1", ``, nil, 405, "method_not_allowed", nil},
		{"wrong method on list", "DELETE", "/connections", ``, nil, 405, "method_not_allowed", nil},
		{"unknown route", "GET", "/nope", ``, nil, 404, "not_found", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := wantError(t, s.do(tc.method, tc.path, tc.body, tc.hdr...), tc.status, tc.code)
			if tc.fields != nil {
				if diff := cmp.Diff(tc.fields, fields(e)); diff != "" {
					t.Errorf("fields (-want +got):\n%s\n%+v", diff, e)
				}
			}
		})
	}
	// Nothing above changed the stored connection.
	var in connection.Info
	s.do("GET", "/connections/conn-1", "").json(t, &in)
	if in.Version != 1 || in.Props["addr"] != "p1" {
		t.Errorf("after the refused requests: %+v", in)
	}
	if r := s.do("PATCH", "/connections/x", ""); r.header.Get("Allow") != "GET, PUT, DELETE" {
		t.Errorf("Allow %q", r.header.Get("Allow"))
	}
}

func TestInUse(t *testing.T) {
	s := newServer(t, nil)
	s.do("POST", "/connections", valid)
	if _, err := s.m.Attach(context.Background(), "conn-1", "rule1/source"); err != nil {
		t.Fatal(err)
	}
	e := wantError(t, s.do("DELETE", "/connections/conn-1", ""), 409, "in_use")
	if !cmp.Equal(e.Refs, []string{"rule1/source"}) || !strings.Contains(e.Error, "rule1/source") {
		t.Errorf("in_use body %+v", e)
	}
	e = wantError(t, s.do("PUT", "/connections/conn-1", `{"typ":"fake","props":{"addr":"a"}}`), 409, "in_use")
	if !cmp.Equal(e.Refs, []string{"rule1/source"}) {
		t.Errorf("in_use body %+v", e)
	}
	var in connection.Info
	s.do("GET", "/connections/conn-1", "").json(t, &in)
	if in.RefCount != 1 || !cmp.Equal(in.Refs, []string{"rule1/source"}) {
		t.Errorf("refs in GET: %d %v", in.RefCount, in.Refs)
	}
	s.m.Detach("conn-1", "rule1/source")
	if r := s.do("DELETE", "/connections/conn-1", ""); r.status != 204 {
		t.Errorf("delete after detach: %d %s", r.status, r.body)
	}
}

func TestMountUnderPrefix(t *testing.T) {
	fake := connectortest.NewFake()
	reg := &registry.Registry{}
	reg.Register("fake", fake)
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mux := http.NewServeMux()
	mux.Handle("/api/", http.StripPrefix("/api", httpapi.New(m, nil)))
	ts := httptest.NewServer(mux)
	defer ts.Close()
	res, err := http.Post(ts.URL+"/api/connections", "application/json", strings.NewReader(valid))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("create under /api: %d", res.StatusCode)
	}
	res, err = http.Get(ts.URL + "/api/connections/conn-1")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("get under /api: %d", res.StatusCode)
	}
}

// TestListPages: no answer is unbounded. GET /connections answers at most
// MaxPageSize connections, with a Link to the next page; following the
// links lists every connection once.
func TestListPages(t *testing.T) {
	s := newServer(t, &httpapi.Options{MaxPageSize: 2})
	for _, id := range []string{"e", "a", "d", "b", "c"} {
		if r := s.do("POST", "/connections", `{"id":"`+id+`","typ":"fake","props":{"addr":"p"}}`); r.status != 201 {
			t.Fatal(r.status, r.body)
		}
	}
	var seen []string
	next := "/connections"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("the pages never end")
		}
		r := s.do("GET", next, "")
		var page []connection.Info
		r.json(t, &page)
		if r.status != 200 || len(page) > 2 {
			t.Fatalf("page %s: %d, %d items", next, r.status, len(page))
		}
		for _, in := range page {
			seen = append(seen, in.ID)
		}
		next = ""
		if l := r.header.Get("Link"); l != "" {
			next = strings.TrimSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`)
		}
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "d", "e"}, seen); diff != "" {
		t.Errorf("listed (-want +got):\n%s", diff)
	}
	for _, q := range []string{"?limit=0", "?limit=3", "?limit=x"} {
		wantError(t, s.do("GET", "/connections"+q, ""), 400, "invalid_argument")
	}
	var one []connection.Info
	s.do("GET", "/connections?limit=1&after=c", "").json(t, &one)
	if len(one) != 1 || one[0].ID != "d" {
		t.Errorf("limit=1 after c: %+v", one)
	}
}
