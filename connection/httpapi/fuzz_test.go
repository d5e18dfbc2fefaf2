package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// fuzzHandler serves the API of a Manager on the memory store, with the
// fake type, whose checks never leave the process.
func fuzzHandler(f *testing.F) (http.Handler, *connection.Manager) {
	reg := &registry.Registry{}
	reg.Register("fake", connectortest.NewFake())
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.Close() })
	if _, err := m.Create(context.Background(), connection.Spec{ID: "existing", Type: "fake", Props: map[string]any{"addr": "a", "password": "pw"}}); err != nil {
		f.Fatal(err)
	}
	c := check.New(&check.Options{Registry: reg, Timeout: time.Second})
	return httpapi.New(m, &httpapi.Options{MaxBodyBytes: 64 << 10, Logger: slog.New(slog.DiscardHandler), Checker: c}), m
}

// serve runs one request and checks what every answer must be: no 5xx
// (but from a check, which may say the peer failed), a JSON body (or none
// for 204), no secret, in bounded time.
func serve(t *testing.T, h http.Handler, method, target string, body []byte, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(string(body)))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	ctx, cancel := context.WithTimeout(req.Context(), 5*time.Second)
	defer cancel()
	w := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(w, req.WithContext(ctx))
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("%s %s took %v", method, target, d)
	}
	isCheck := strings.HasPrefix(target, "/metadata/")
	if w.Code >= 500 && (!isCheck || (w.Code != http.StatusBadGateway && w.Code != http.StatusGatewayTimeout && w.Code != http.StatusServiceUnavailable)) {
		t.Fatalf("%s %s %q: status %d %s", method, target, body, w.Code, w.Body)
	}
	if w.Code != http.StatusNoContent && !json.Valid(w.Body.Bytes()) {
		t.Fatalf("%s %s: body is not JSON: %q", method, target, w.Body)
	}
	if strings.Contains(w.Body.String(), `"pw"`) {
		t.Fatalf("a secret in the answer: %s", w.Body)
	}
	return w
}

func FuzzCreateBody(f *testing.F) {
	for _, s := range []string{
		`{"id":"a","typ":"fake","props":{"addr":"x"}}`,
		`{"id":"a","typ":"fake","props":{"addr":"x","password":"p","header":{"Authorization":"t"},"retries":3,"mode":"b"}}`,
		`{"id":"existing","typ":"fake","props":{"addr":"x"}}`,
		`{"id":"a b","typ":"fake"}`, `{"id":"a","typ":"nope","props":{}}`, `{"id":1}`, `[]`, `null`, `{`, ``,
		`{"id":"a","typ":"fake","props":{"addr":"invalid"}}`, `{"id":"a","typ":"fake","props":{"retries":1e400}}`,
		`{"id":"a","typ":"fake","props":{"url":"mysql://u:p@[::1"}}`, `{"id":"a","typ":"fake","props":{"addr":"x"}}{}`,
	} {
		f.Add([]byte(s))
	}
	h, m := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		w := serve(t, h, "POST", "/connections", body)
		if w.Code == http.StatusCreated {
			var in connection.Info
			json.Unmarshal(w.Body.Bytes(), &in)
			m.Delete(context.Background(), in.ID, connection.Tag{})
		}
	})
}

// FuzzUpdateBody: any update of the stored connection. A refused one
// changes nothing; an accepted one is the next version, met If-Match, and
// never carried the stored password to another addr.
func FuzzUpdateBody(f *testing.F) {
	for _, s := range []struct{ id, body, ifMatch string }{
		{"existing", `{"typ":"fake","props":{"addr":"y","password":"******"}}`, `"1-1"`},
		{"existing", `{"typ":"fake","props":{"addr":"a","password":"******"}}`, `"1"`},
		{"existing", `{"typ":"fake","props":{"addr":"a","password":"******","mode":"b"}}`, `W/"1-1", "1-1"`},
		{"existing", `{"id":"other","typ":"fake","props":{}}`, ""},
		{"existing", `{"typ":"fake","props":{"url":"mysql://u:******@h/db"}}`, "*"},
		{"missing", `{"typ":"fake","props":{"addr":"y"}}`, `W/"3"`},
		{"existing", `{"typ":"fake"}`, "abc"},
	} {
		f.Add(s.id, []byte(s.body), s.ifMatch)
	}
	h, m := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, id string, body []byte, ifMatch string) {
		before, _ := m.Resolve("existing")
		in0, _ := m.Get("existing")
		w := serve(t, h, "PUT", "/connections/"+url.PathEscape(id), body, "If-Match", ifMatch)
		after, err := m.Resolve("existing")
		if err != nil {
			t.Fatalf("existing: %v", err)
		}
		in1, _ := m.Get("existing")
		if w.Code != http.StatusOK || id != "existing" {
			if in1.Version != in0.Version || !cmp.Equal(before, after) {
				t.Fatalf("a refused update (%d) changed the connection: %+v -> %+v", w.Code, before, after)
			}
			return
		}
		if in1.Version != in0.Version+1 || w.Header().Get("ETag") != fmt.Sprintf(`"%d-%d"`, in1.Incarnation, in1.Version) {
			t.Fatalf("accepted update: version %d -> %d, ETag %s", in0.Version, in1.Version, w.Header().Get("ETag"))
		}
		if im := strings.TrimSpace(ifMatch); im != "" && im != "*" && !strongTag(im, in0.Tag()) {
			t.Fatalf("update accepted with If-Match %q at version %d", ifMatch, in0.Version)
		}
		pw, _ := before.Props["password"].(string)
		if after.Props["addr"] != before.Props["addr"] && pw != "" && after.Props["password"] == pw && !strings.Contains(string(body), pw) {
			t.Fatalf("the stored password went to addr %v with body %s", after.Props["addr"], body)
		}
	})
}

// strongTag reports whether the If-Match list names tag v by a strong
// tag.
func strongTag(list string, v connection.Tag) bool {
	tag := fmt.Sprintf(`"%d-%d"`, v.Incarnation, v.Version)
	for i := 0; ; {
		j := strings.Index(list[i:], tag)
		if j < 0 {
			return false
		}
		if k := i + j; k < 2 || list[k-2:k] != "W/" {
			return true
		}
		i += j + 1
	}
}

func FuzzCheckBody(f *testing.F) {
	for _, s := range []struct{ typ, body string }{
		{"fake", `{"addr":"ok"}`}, {"fake", `{"connectionSelector":"existing"}`},
		{"fake", `{"connectionSelector":"existing","password":"******"}`}, {"fake", `{"connectionSelector":5}`},
		{"fake", `{"addr":"ok","table":"missing"}`}, {"fake", `{"table":"missing"}`}, {"nope", `{}`}, {"fake", `[`}, {"fake", `{"mode":[1]}`},
	} {
		f.Add(s.typ, []byte(s.body))
	}
	h, _ := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, typ string, body []byte) {
		// Only a body that names a peer can get a peer's failure (5xx):
		// the fake's peers are all up, so any other is the request's fault.
		var props map[string]any
		json.Unmarshal(body, &props)
		addr, _ := props["addr"].(string)
		named := addr != "" || props["connectionSelector"] == "existing"
		for _, side := range []string{"sinks", "sources"} {
			w := serve(t, h, "POST", "/metadata/"+side+"/connection/"+url.PathEscape(typ), body)
			if w.Code >= 500 && !named {
				t.Fatalf("a check naming no peer got %d: %s %s", w.Code, body, w.Body)
			}
		}
	})
}

func FuzzID(f *testing.F) {
	for _, s := range []string{"existing", "a", "", "a/b", "..", "%2F", "a%00b", strings.Repeat("x", 129), "é", "Conn_1-2"} {
		f.Add(s)
	}
	h, _ := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, id string) {
		target := "/connections/" + url.PathEscape(id)
		for _, method := range []string{"GET", "DELETE", "PATCH"} {
			w := serve(t, h, method, target, nil, "If-Match", `"1-99"`)
			if method == "DELETE" && w.Code == http.StatusNoContent {
				t.Fatalf("DELETE %q with a stale If-Match succeeded", id)
			}
		}
	})
}
