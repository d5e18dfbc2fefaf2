package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
	"github.com/connkit/connkit/connector"
	_ "github.com/connkit/connkit/connector/all"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// routesWithBodies are every route that reads a body.
var routesWithBodies = []struct{ method, path string }{
	{"POST", "/connections"},
	{"PUT", "/connections"},
	{"PUT", "/connections/c1"},
	{"POST", "/connections/c1/check"},
	{"POST", "/metadata/sinks/connection/mqtt"},
	{"POST", "/metadata/sources/connection/mqtt"},
}

// builtinServer serves a Manager of every built-in type, with one stored
// mqtt connection c1 that dials a closed port.
func builtinServer(t *testing.T) (*httptest.Server, *connection.Manager) {
	t.Helper()
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{
		Registry: registry.Default, Logger: slog.New(slog.DiscardHandler), MinBackoff: time.Hour, WatchInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(context.Background(), connection.Spec{ID: "c1", Type: "mqtt",
		Props: map[string]any{"server": "tcp://127.0.0.1:1", "password": "pw-of-c1"}}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(httpapi.New(m, &httpapi.Options{Logger: slog.New(slog.DiscardHandler),
		Checker: check.New(&check.Options{Registry: registry.Default, Timeout: time.Second})}))
	t.Cleanup(func() {
		ts.Close()
		m.Close()
	})
	return ts, m
}

// deep is a body of n bytes or so: props whose one value is arrays
// nested as deep as the size allows.
func deep(n int) string {
	d := (n - 40) / 2
	return `{"id":"a","typ":"mqtt","props":{"x":` + strings.Repeat("[", d) + strings.Repeat("]", d) + `}}`
}

// TestEveryBodyCostsLinear: a body nested as deep as its size allows,
// on every route that reads one, is refused at once with 400 naming the
// depth, and costs a small multiple of its size, at 50 KiB as at the
// route's limit (1 MiB for a set; one connection's props and a little
// more for the others, which refuse a larger body with 413). Before one
// decoder bounded the depth, 50 KiB cost 1.2 GB and 1 MiB never
// finished.
func TestEveryBodyCostsLinear(t *testing.T) {
	ts, m := builtinServer(t)
	h := ts.Config.Handler
	one := m.MaxPropsBytes() + 4096
	for _, rt := range routesWithBodies {
		set := rt.method == "PUT" && rt.path == "/connections"
		limit := one
		if set {
			limit = 1 << 20
		}
		for _, size := range []int{50 << 10, limit - 64, limit + 64} {
			b := deep(size)
			switch {
			case set:
				b = "[" + deep(size-2) + "]"
			case strings.HasPrefix(rt.path, "/metadata"), strings.HasSuffix(rt.path, "/check"):
				b = `{"x":` + strings.Repeat("[", size/2-10) + strings.Repeat("]", size/2-10) + `}`
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(rt.method, rt.path, strings.NewReader(b)))
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			want, says := 400, "nested more than 32 levels"
			if len(b) > limit {
				want, says = 413, "body_too_large"
			}
			if rec.Code != want || !strings.Contains(rec.Body.String(), says) {
				t.Errorf("%s %s, %d bytes: %d %s", rt.method, rt.path, len(b), rec.Code, connector.Short(rec.Body.String()))
			}
			if alloc > uint64(8*len(b))+1<<20 {
				t.Errorf("%s %s, %d bytes nested: %d bytes allocated", rt.method, rt.path, len(b), alloc)
			}
			if took > 2*time.Second {
				t.Errorf("%s %s, %d bytes nested: %v", rt.method, rt.path, len(b), took)
			}
		}
	}
}

// marker is an input no answer may quote more than 64 bytes of: random
// letters, so that any run of it in an answer is a quote.
func marker(n int) string {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return string(b)
}

// quoted returns the longest run of in that answer holds, if it is over
// 64 bytes.
func quoted(answer, in string) int {
	// In any case: a method, a scheme, a host may be written in another.
	answer, in = strings.ToLower(answer), strings.ToLower(in)
	const w = 65
	if len(answer) < w {
		return 0
	}
	windows := make(map[string]bool, len(answer))
	for i := 0; i+w <= len(answer); i++ {
		windows[answer[i:i+w]] = true
	}
	longest := 0
	for i := 0; i+w <= len(in); i++ {
		if windows[in[i:i+w]] {
			n := w
			for i+n < len(in) && strings.Contains(answer, in[i:i+n+1]) {
				n++
			}
			longest = max(longest, n)
			i += n
		}
	}
	return longest
}

type exchange struct {
	name, method, path, body string
	header                   map[string]string
}

// TestNoAnswerQuotesMuchInput: every error answer, on every route, to a
// long input in its path, query, headers, body members, props (every
// prop of every type, and map keys), and check bodies, quotes at most
// 64 bytes of it, is small, and is never a 500.
func TestNoAnswerQuotesMuchInput(t *testing.T) {
	ts, m := builtinServer(t)
	M := marker(4 << 10)
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	xs := []exchange{
		{name: "method", method: strings.ToUpper(M[:200]), path: "/connections"},
		{name: "check type", method: "POST", path: "/metadata/sinks/connection/" + M, body: "{}"},
		{name: "source type", method: "POST", path: "/metadata/sources/connection/" + M, body: "{}"},
		{name: "non-canonical", method: "GET", path: "/connections/" + M + "/../x"},
		{name: "limit", method: "GET", path: "/connections?limit=" + M},
		{name: "after", method: "GET", path: "/connections?after=" + M + "&limit=x"},
		{name: "prune", method: "PUT", path: "/connections?prune=" + M, body: "[]"},
		{name: "dryRun", method: "PUT", path: "/connections?dryRun=" + M, body: "[]"},
		{name: "events", method: "GET", path: "/events?connection=" + M},
		{name: "readyz", method: "GET", path: "/readyz?verbose&connection=" + M},
		{name: "role", method: "POST", path: "/connections/c1/check?role=" + M},
		{name: "If-Match", method: "PUT", path: "/connections/c1", body: `{"typ":"mqtt","props":{"server":"tcp://127.0.0.1:1"}}`, header: map[string]string{"If-Match": M}},
		{name: "If-Match tag", method: "DELETE", path: "/connections/c1", header: map[string]string{"If-Match": `"` + M + `"`}},
		{name: "Last-Event-ID", method: "GET", path: "/events", header: map[string]string{"Last-Event-ID": M}},
		{name: "body id", method: "POST", path: "/connections", body: js(map[string]any{"id": M, "typ": "mqtt"})},
		{name: "body typ", method: "POST", path: "/connections", body: js(map[string]any{"id": "x", "typ": M})},
		{name: "body member", method: "POST", path: "/connections", body: js(map[string]any{M: 1})},
		{name: "body member case", method: "POST", path: "/connections", body: js(map[string]any{"ID": M})},
		{name: "update id", method: "PUT", path: "/connections/c1", body: js(map[string]any{"id": M})},
		{name: "apply id", method: "PUT", path: "/connections", body: js([]any{map[string]any{"id": M}})},
		{name: "apply typ", method: "PUT", path: "/connections", body: js([]any{map[string]any{"id": "x", "typ": M}})},
		{name: "key twice", method: "POST", path: "/connections", body: `{"props":{"` + M + `":1,"` + M + `":2}}`},
		{name: "deep key", method: "POST", path: "/connections", body: `{"props":{"` + M + `":` + strings.Repeat(`{"`+M[:100]+`":`, 40) + `1` + strings.Repeat("}", 40) + `}}`},
		{name: "bad JSON", method: "POST", path: "/connections", body: `{"id":"` + M + `" "typ"}`},
		{name: "selector", method: "POST", path: "/metadata/sinks/connection/mqtt", body: js(map[string]any{"connectionSelector": M})},
	}
	for _, p := range []string{"/connections/" + M, "/connections/" + M + "/check", "/connections/" + M + "/history",
		"/connections/" + M + "/reconnect", "/" + M, "/ui/" + M, "/metadata/" + M} {
		for _, method := range []string{"GET", "POST", "PUT", "DELETE"} {
			xs = append(xs, exchange{name: method + " " + p[:20], method: method, path: p, body: "{}"})
		}
	}
	// Every prop of every type, in a connection and in checks.
	base := map[string]map[string]any{
		"mqtt":      {"server": "tcp://127.0.0.1:1"},
		"nng":       {"url": "tcp://127.0.0.1:1"},
		"httppush":  {"addr": "127.0.0.1:1"},
		"websocket": {"addr": "127.0.0.1:1"},
		"edgex":     {"server": "127.0.0.1", "port": 1},
		"sql":       {"url": "mysql://u:p@127.0.0.1:1/db"},
	}
	for _, info := range m.Types() {
		for _, f := range info.Schema.Fields {
			for _, v := range []any{M, "tcp://" + M + ":1", map[string]any{M: M}, []any{M}} {
				props := map[string]any{}
				for k, bv := range base[info.Name] {
					props[k] = bv
				}
				props[f.Name] = v
				name := fmt.Sprintf("%s.%s=%T", info.Name, f.Name, v)
				xs = append(xs,
					exchange{name: "create " + name, method: "POST", path: "/connections", body: js(map[string]any{"id": "p", "typ": info.Name, "props": props})},
					exchange{name: "sink " + name, method: "POST", path: "/metadata/sinks/connection/" + info.Name, body: js(props)},
					exchange{name: "source " + name, method: "POST", path: "/metadata/sources/connection/" + info.Name, body: js(props)})
				if info.Name == "mqtt" {
					props["connectionSelector"] = "c1"
					xs = append(xs, exchange{name: "selector " + name, method: "POST", path: "/metadata/sinks/connection/mqtt", body: js(props)},
						exchange{name: "stored check " + name, method: "POST", path: "/connections/c1/check", body: js(props)})
				}
			}
		}
	}
	for _, x := range xs {
		req, err := http.NewRequest(x.method, ts.URL+x.path, strings.NewReader(x.body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range x.header {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(x.name, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode < 400 {
			m.Delete(context.Background(), "p", connection.Tag{})
			continue // an answer of data, not of an error
		}
		if res.StatusCode >= 500 && res.StatusCode != 502 && res.StatusCode != 503 && res.StatusCode != 504 {
			t.Errorf("%s: %d %s", x.name, res.StatusCode, connector.Short(string(b)))
		}
		if n := quoted(string(b), M); n > 0 {
			t.Errorf("%s: the answer quotes %d bytes of the input: %s", x.name, n, connector.Truncate(string(b), 300))
		}
		if len(b) > 8<<10 {
			t.Errorf("%s: an answer of %d bytes", x.name, len(b))
		}
	}
}

var msRE = regexp.MustCompile(`"ms":[0-9.]+`)

// TestNoScrubberOracle: a value that holds a stored secret, sent beside
// it (a check naming the connection, an update keeping the secret by its
// mask), is never echoed with the secret masked in place, which would
// show where the secret occurs in it, nor answered in any way that
// depends on the secret: the request's own props are checked first, and
// a message after the stored props are laid under (a file a connector
// could not read, a scheme it lower-cased) names the props it quotes. So
// the answers are the same whatever the stored password.
func TestNoScrubberOracle(t *testing.T) {
	var all strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&all, "%04d", i)
	}
	guess := all.String()
	answers := map[string]map[string]string{}
	for _, pw := range []string{"4711", "9999"} {
		ts, m := builtinServer(t)
		if _, err := m.Update(context.Background(), connection.Spec{ID: "c1", Type: "mqtt",
			Props: map[string]any{"server": "tcp://127.0.0.1:1", "password": pw}}, connection.Tag{}); err != nil {
			t.Fatal(err)
		}
		answers[pw] = map[string]string{}
		for _, x := range []exchange{
			{name: "check", method: "POST", path: "/metadata/sinks/connection/mqtt",
				body: `{"connectionSelector":"c1","protocolVersion":"` + guess + `"}`},
			{name: "short guess", method: "POST", path: "/metadata/sinks/connection/mqtt",
				body: `{"connectionSelector":"c1","protocolVersion":"x4711y"}`},
			{name: "stored check", method: "POST", path: "/connections/c1/check", body: `{"protocolVersion":"x4711y"}`},
			{name: "update", method: "PUT", path: "/connections/c1",
				body: `{"typ":"mqtt","props":{"server":"tcp://127.0.0.1:1","password":"******","protocolVersion":"x4711y"}}`},
			{name: "file", method: "POST", path: "/connections/c1/check", body: `{"certificationPath":"x4711y","privateKeyPath":"k"}`},
			{name: "file guesses", method: "POST", path: "/metadata/sources/connection/mqtt",
				body: `{"connectionSelector":"c1","certificationPath":"/tmp/` + guess[:4000] + `","privateKeyPath":"/tmp/y"}`},
			{name: "scheme guesses", method: "POST", path: "/metadata/sources/connection/mqtt",
				body: `{"connectionSelector":"c1","server":"X4711Y://127.0.0.1:1"}`},
			{name: "update file", method: "PUT", path: "/connections/c1",
				body: `{"typ":"mqtt","props":{"server":"tcp://127.0.0.1:1","password":"******","certificationPath":"/tmp/x4711","privateKeyPath":"/tmp/y"}}`},
		} {
			req, _ := http.NewRequest(x.method, ts.URL+x.path, strings.NewReader(x.body))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 400 || strings.Contains(string(b), "******") {
				t.Errorf("%s: %d %s", x.name, res.StatusCode, connector.Truncate(string(b), 400))
			}
			// A step's time is no answer to compare.
			answers[pw][x.name] = msRE.ReplaceAllString(string(b), `"ms":0`)
		}
	}
	for name, a := range answers["4711"] {
		if b := answers["9999"][name]; a != b {
			t.Errorf("%s: the answer depends on the stored secret:\n%s\n%s", name, a, b)
		}
	}
}

// bodies are sets (PUT /connections) of about n bytes in the shapes that
// cost a decoder most: many small members, many small items nested as
// deep as allowed, one long string, and nesting past the limit.
func bodies(n int) map[string]string {
	var flat, nested strings.Builder
	flat.WriteString(`[{"id":"a","typ":"fake","props":{`)
	for i := 0; flat.Len() < n-16; i++ {
		if i > 0 {
			flat.WriteByte(',')
		}
		fmt.Fprintf(&flat, `"k%d":1`, i)
	}
	flat.WriteString(`}}]`)
	nested.WriteString(`[{"id":"a","typ":"fake","props":{"x":` + strings.Repeat("[", 29))
	for nested.Len() < n-40 {
		nested.WriteString("1,")
	}
	nested.WriteString("1" + strings.Repeat("]", 29) + `}}]`)
	var objects strings.Builder
	objects.WriteString("[")
	for objects.Len() < n-20 {
		objects.WriteString(`{"aaaaaaaaa":0},`)
	}
	objects.WriteString(`{"aaaaaaaaa":0}]`)
	return map[string]string{
		"objects":  objects.String(),
		"flat":     flat.String(),
		"nested":   nested.String(),
		"string":   `[{"id":"a","typ":"fake","props":{"x":"` + strings.Repeat("a", n-50) + `"}}]`,
		"too-deep": "[" + deep(n-2) + "]",
	}
}

// BenchmarkBody is PUT /connections (the route that takes the largest
// body) of bodies of 1 KiB to the 1 MiB limit, through the handler: the
// decoder, then the Manager's refusal (the props do not fit the type).
// B/op per body byte is what a hostile body costs.
func BenchmarkBody(b *testing.B) {
	reg := &registry.Registry{}
	reg.Register("fake", connectortest.NewFake())
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	h := httpapi.New(m, &httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	for _, size := range []int{1 << 10, 64 << 10, 1<<20 - 64} {
		bs := bodies(size)
		for _, shape := range []string{"objects", "flat", "nested", "string", "too-deep"} {
			body := bs[shape]
			b.Run(fmt.Sprintf("%s/%dKiB", shape, size>>10), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, httptest.NewRequest("PUT", "/connections", strings.NewReader(body)))
					if rec.Code != 400 {
						b.Fatalf("%d %s", rec.Code, connector.Short(rec.Body.String()))
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(body)), "ns/byte")
			})
		}
	}
}

// TestNoOracleThroughTheDatabase: a check of a stored MariaDB connection
// whose query or table holds a guess of the stored password (MariaDB
// quotes part of a query, "near '...'"; a table is quoted escaped) answers
// the same whether the guess is right or not.
func TestNoOracleThroughTheDatabase(t *testing.T) {
	raw := os.Getenv("CONNKIT_MYSQL_URL")
	if raw == "" {
		t.Skip("CONNKIT_MYSQL_URL is not set: run make test")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	ts, m := builtinServer(t)
	if _, err := m.Create(context.Background(), connection.Spec{ID: "db", Type: "sql", Props: map[string]any{"url": raw}}); err != nil {
		t.Fatal(err)
	}
	wrong := pw[:len(pw)-1] + "#"
	answer := func(body string) string {
		res, err := http.Post(ts.URL+"/metadata/sources/connection/sql", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return msRE.ReplaceAllString(string(b), `"ms":0`)
	}
	for name, body := range map[string]string{
		"query": `{"connectionSelector":"db","query":"SELECT 1 FROM dual WHERE x GUESS"}`,
		"table": `{"connectionSelector":"db","table":"t\tGUESS\tz"}`,
	} {
		right := answer(strings.ReplaceAll(body, "GUESS", pw))
		other := answer(strings.ReplaceAll(body, "GUESS", wrong))
		if strings.Contains(right, "******") || strings.Contains(right, pw) {
			t.Errorf("%s: %s", name, right)
		}
		if strings.ReplaceAll(other, wrong, "GUESS") != strings.ReplaceAll(right, pw, "GUESS") {
			t.Errorf("%s: a right guess answers\n%s\na wrong one\n%s", name, right, other)
		}
	}
}

// TestBodiesInFlightBounded: past MaxBodyBytesInFlight of bodies being
// read at once, a request gets 503 resource_exhausted at once, and room
// comes back as the others end.
func TestBodiesInFlightBounded(t *testing.T) {
	reg := &registry.Registry{}
	reg.Register("fake", connectortest.NewFake())
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ts := httptest.NewServer(httpapi.New(m, &httpapi.Options{Logger: slog.New(slog.DiscardHandler), MaxBodyBytesInFlight: 2 << 20}))
	defer ts.Close()
	// Two sets of 1 MiB held open mid-body take the room.
	var writers []*io.PipeWriter
	defer func() { // before the server's Close, which waits for them
		for _, pw := range writers {
			pw.CloseWithError(io.ErrUnexpectedEOF)
		}
	}()
	results := make(chan int, 2)
	for range 2 {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		req, _ := http.NewRequest("PUT", ts.URL+"/connections?dryRun=true", pr)
		req.ContentLength = 1 << 20
		go func() {
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				results <- 0
				return
			}
			res.Body.Close()
			results <- res.StatusCode
		}()
		pw.Write([]byte("["))
	}
	// A dry run, so that one let in before the two hold the room changes
	// nothing the next one could be refused for.
	third := func() int {
		req, _ := http.NewRequest("PUT", ts.URL+"/connections?dryRun=true", strings.NewReader(`[{"id":"a","typ":"fake","props":{"addr":"p"}}]`))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	connectortest.Eventually(t, "a third body refused while two fill the room", func() bool { return third() == 503 })
	for _, pw := range writers {
		pw.Write([]byte(strings.Repeat(" ", 1<<20-2) + "]"))
		pw.Close()
	}
	for range 2 {
		if code := <-results; code != 200 {
			t.Errorf("a held set answered %d", code)
		}
	}
	if code := third(); code != 200 {
		t.Errorf("after the room came back: %d", code)
	}
}
