// Package ui is connkit's management page: a few static files embedded in
// the binary, with nothing fetched from elsewhere (edge sites are often
// offline). httpapi serves it at /ui/; the page calls the API by relative
// URLs, so it works wherever the API is mounted, as long as the page is
// at the API's /ui/.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// file is one embedded file, with the entity tag of its content.
type file struct {
	name string
	body []byte
	etag string
}

var files = func() map[string]file {
	out := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		name := strings.TrimPrefix(p, "static/")
		out[name] = file{name: name, body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("ui: reading the embedded files: " + err.Error())
	}
	return out
}()

// CSP allows the page its own scripts, styles and API calls only: a value
// a hostile user stored in a connection can never run as script, load
// from elsewhere or be framed.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

func index(name string) string {
	if name == "" || strings.HasSuffix(name, "/") {
		return name + "index.html"
	}
	return name
}

// Serve writes the file name ("" for the page) with its type, entity tag
// and security headers, and reports false, writing nothing, if there is no
// such file. Conditional requests get 304.
func Serve(w http.ResponseWriter, r *http.Request, name string) bool {
	f, ok := files[index(name)]
	if !ok {
		return false
	}
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	// Revalidate each time: a new binary may carry a new page.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	h.Set("Content-Type", contentType(f.name))
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
	return true
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	}
	return "application/octet-stream"
}
