package httpapi_test

import (
	"io/fs"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/connkit/connkit/connection/httpapi"
)

// TestPageFiles: the page and its files are served with their types, an
// entity tag that answers 304, and headers that keep stored values from
// running as script or the page from being framed; other paths and
// methods get the API's problems.
func TestPageFiles(t *testing.T) {
	s := newServer(t, nil)
	for path, ctype := range map[string]string{
		"/ui/":           "text/html; charset=utf-8",
		"/ui/index.html": "text/html; charset=utf-8",
		"/ui/app.js":     "text/javascript; charset=utf-8",
		"/ui/style.css":  "text/css; charset=utf-8",
	} {
		r := s.do("GET", path, "")
		if r.status != 200 || r.header.Get("Content-Type") != ctype || len(r.body) == 0 {
			t.Fatalf("GET %s: %d %q, %d bytes", path, r.status, r.header.Get("Content-Type"), len(r.body))
		}
		csp := r.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %s", path, csp, want)
			}
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: headers %v", path, r.header)
		}
		etag := r.header.Get("ETag")
		if etag == "" {
			t.Fatalf("GET %s: no ETag", path)
		}
		if r := s.do("GET", path, "", "If-None-Match", etag); r.status != http.StatusNotModified {
			t.Errorf("GET %s If-None-Match its tag: %d, want 304", path, r.status)
		}
	}
	// Relative, so that it holds under any prefix the API is mounted at.
	req, _ := http.NewRequest("GET", s.url+"/ui", nil)
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "ui/" {
		t.Errorf("GET /ui: %d to %q, want 301 to ui/", res.StatusCode, res.Header.Get("Location"))
	}
	wantError(t, s.do("GET", "/ui/nothing.js", ""), 404, "not_found")
	wantError(t, s.do("GET", "/ui/../connections", ""), 404, "not_found")
	wantError(t, s.do("POST", "/ui/", ""), 405, "method_not_allowed")
	if r := s.do("HEAD", "/ui/", ""); r.status != 200 || r.header.Get("ETag") == "" {
		t.Errorf("HEAD /ui/: %d %v", r.status, r.header)
	}
}

// TestPageIsSelfContained: nothing in the page's files loads from
// elsewhere (edge sites are often offline), and nothing writes HTML from
// strings, where a value a user stored could become markup.
func TestPageIsSelfContained(t *testing.T) {
	dir := os.DirFS("ui/static")
	n := 0
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|url\(\s*['"]?[a-z]+:`)
	markup := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function`)
	err := fs.WalkDir(dir, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(dir, p)
		if err != nil {
			return err
		}
		n++
		if m := external.Find(b); m != nil {
			t.Errorf("%s refers to %q outside the page", p, m)
		}
		if strings.HasSuffix(p, ".js") {
			if m := markup.Find(b); m != nil {
				t.Errorf("%s uses %s", p, m)
			}
		}
		if strings.HasSuffix(p, ".html") && regexp.MustCompile(`<script>|style=|\son[a-z]+=`).Match(b) {
			t.Errorf("%s has inline script or style, which the page's policy refuses", p)
		}
		return nil
	})
	if err != nil || n < 3 {
		t.Fatalf("read %d files: %v", n, err)
	}
}

// TestCrossOrigin: a browser on another site cannot change connections
// through the API (a form post or a fetch from that page), while the
// API's own page, reads, and programs that are not browsers can.
func TestCrossOrigin(t *testing.T) {
	s := newServer(t, nil)
	create := `{"id":"a","typ":"fake","props":{"addr":"p1"}}`
	e := wantError(t, s.do("POST", "/connections", create, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"), 403, "cross_origin")
	if strings.Contains(e.Error, "evil") {
		t.Errorf("the error echoes the origin: %s", e.Error)
	}
	wantError(t, s.do("POST", "/connections", create, "Origin", "https://evil.example"), 403, "cross_origin")
	wantError(t, s.do("DELETE", "/connections/a", "", "Sec-Fetch-Site", "same-site"), 403, "cross_origin")
	if r := s.do("GET", "/connections", "", "Sec-Fetch-Site", "cross-site"); r.status != 200 {
		t.Errorf("a cross-site read: %d", r.status)
	}
	if _, err := s.m.Get("a"); err == nil {
		t.Fatal("a cross-site post created a connection")
	}
	if r := s.do("POST", "/connections", create, "Sec-Fetch-Site", "same-origin"); r.status != 201 {
		t.Fatalf("a same-origin post: %d %s", r.status, r.body)
	}
	if r := s.do("DELETE", "/connections/a", ""); r.status != 204 {
		t.Fatalf("a program's delete: %d %s", r.status, r.body)
	}
	// An origin the handler is told to trust may.
	co := http.NewCrossOriginProtection()
	if err := co.AddTrustedOrigin("https://console.example"); err != nil {
		t.Fatal(err)
	}
	s2 := newServerWith(t, s, &httpapi.Options{CrossOrigin: co})
	if r := s2.do("POST", "/connections", create, "Sec-Fetch-Site", "cross-site", "Origin", "https://console.example"); r.status != 201 {
		t.Fatalf("a trusted origin's post: %d %s", r.status, r.body)
	}
}
