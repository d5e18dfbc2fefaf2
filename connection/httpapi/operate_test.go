package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/store"
	"github.com/connkit/connkit/store/memory"
)

// sse is one message of an event stream; comment holds a ": ..." line.
type sse struct {
	id, event, data, comment string
}

// stream opens GET path as an event stream and parses it on a goroutine
// that ends when the body does (closed at cleanup).
func (s *server) stream(path string, hdr ...string) (*http.Response, <-chan sse) {
	s.t.Helper()
	req, err := http.NewRequest("GET", s.url+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	ch := make(chan sse, 1024)
	done := make(chan struct{})
	s.t.Cleanup(func() { res.Body.Close(); <-done })
	go func() {
		defer close(done)
		defer close(ch)
		sc := bufio.NewScanner(res.Body)
		var cur sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur != (sse{}) {
					ch <- cur
				}
				cur = sse{}
			case strings.HasPrefix(line, ":"):
				cur.comment = strings.TrimSpace(line[1:])
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				cur.data = line[6:]
			}
		}
	}()
	return res, ch
}

func nextSSE(t *testing.T, ch <-chan sse, match func(sse) bool) sse {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("the stream ended")
			}
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatal("no matching event within 5s")
		}
	}
}

func isEvent(kind string) func(sse) bool { return func(e sse) bool { return e.event == kind } }

// TestEventStream: the stream's id is the sequence, event the kind, data
// the JSON event; it resumes from Last-Event-ID, filters by connection,
// keeps alive, and ends at CloseStreams.
func TestEventStream(t *testing.T) {
	base := newServer(t, nil)
	h := httpapi.New(base.m, &httpapi.Options{KeepAlive: 20 * time.Millisecond})
	s := &server{t: t, url: listen(t, h), m: base.m, fake: base.fake}
	res, evs := s.stream("/events")
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" || res.StatusCode != 200 {
		t.Fatalf("GET /events: %d %q", res.StatusCode, ct)
	}
	nextSSE(t, evs, func(e sse) bool { return e.comment == "connected" })
	s.fake.SetUp("p1", true)
	if r := s.do("POST", "/connections", valid); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	created := nextSSE(t, evs, isEvent("created"))
	var ev connection.Event
	if err := json.Unmarshal([]byte(created.data), &ev); err != nil || ev.ID != "conn-1" || ev.Kind != "created" || created.id == "" {
		t.Fatalf("created: %+v %v", created, err)
	}
	if strings.Contains(created.data, "hunter2") {
		t.Fatalf("a secret in an event: %s", created.data)
	}
	nextSSE(t, evs, func(e sse) bool { return e.event == "status" && strings.Contains(e.data, `"status":"connected"`) })
	nextSSE(t, evs, func(e sse) bool { return e.comment == "keep-alive" })

	// Resume after the created event: the next is the status.
	_, again := s.stream("/events", "Last-Event-ID", created.id)
	if e := nextSSE(t, again, func(e sse) bool { return e.event != "" }); e.event != "status" {
		t.Fatalf("resumed with %+v, want the status after created", e)
	}
	// From before a restart (an id past the last): reset.
	_, old := s.stream("/events", "Last-Event-ID", "999999")
	nextSSE(t, old, isEvent("reset"))
	r := s.do("GET", "/events", "", "Last-Event-ID", "x1")
	wantError(t, r, 400, "invalid_argument")
	wantError(t, s.do("GET", "/events?connection=a%20b", ""), 400, "invalid_argument")

	// Filtered: only conn-2's events.
	_, only := s.stream("/events?connection=conn-2")
	nextSSE(t, only, func(e sse) bool { return e.comment == "connected" })
	s.do("POST", "/connections", strings.Replace(valid, "conn-1", "conn-3", 1))
	s.do("POST", "/connections", strings.Replace(valid, "conn-1", "conn-2", 1))
	if e := nextSSE(t, only, func(e sse) bool { return e.event != "" }); !strings.Contains(e.data, `"id":"conn-2"`) {
		t.Fatalf("filtered stream: %+v", e)
	}
	h.CloseStreams()
	for range evs {
	}
}

// TestEventStreamBurst: a burst of events, written in batches, arrives
// whole and in order: each id is one more than the last, unless a lagged
// event says what was dropped.
func TestEventStreamBurst(t *testing.T) {
	s := newServer(t, nil)
	_, evs := s.stream("/events")
	nextSSE(t, evs, func(e sse) bool { return e.comment == "connected" })
	s.fake.SetUp("p", true)
	const n = 300
	for i := range n {
		if _, err := s.m.Create(context.Background(), connection.Spec{ID: fmt.Sprintf("b%03d", i), Type: "fake", Props: map[string]any{"addr": "p"}}); err != nil {
			t.Fatal(err)
		}
	}
	var prev uint64
	seen := 0
	for seen < n {
		e := nextSSE(t, evs, func(e sse) bool { return e.event != "" })
		id, err := strconv.ParseUint(e.id, 10, 64)
		if err != nil {
			t.Fatalf("event id %q", e.id)
		}
		if prev != 0 && id != prev+1 && e.event != "lagged" {
			t.Fatalf("event %d after %d, with no lagged between", id, prev)
		}
		if e.event == "lagged" {
			t.Logf("lagged at %d", id)
			return
		}
		prev = id
		if e.event == "created" {
			seen++
		}
	}
}

// TestHistoryAndReconnect: the history lists transitions; reconnect is
// 202 and redials; both are 404 for an unknown id.
func TestHistoryAndReconnect(t *testing.T) {
	s := newServer(t, nil)
	s.fake.SetUp("p1", true)
	s.do("POST", "/connections", valid)
	if err := s.m.WaitConnected(context.Background(), "conn-1"); err != nil {
		t.Fatal(err)
	}
	var hist []struct {
		State string    `json:"state"`
		Err   string    `json:"err"`
		Since time.Time `json:"since"`
	}
	r := s.do("GET", "/connections/conn-1/history", "")
	r.json(t, &hist)
	if r.status != 200 || len(hist) != 2 || hist[0].State != "connecting" || hist[1].State != "connected" || hist[1].Since.IsZero() {
		t.Fatalf("history: %d %s", r.status, r.body)
	}
	dials := s.fake.Dials("p1")
	r = s.do("POST", "/connections/conn-1/reconnect", "")
	if r.status != 202 {
		t.Fatalf("reconnect: %d %s", r.status, r.body)
	}
	connectortest.Eventually(t, "a redial", func() bool { return s.fake.Dials("p1") > dials })
	wantError(t, s.do("GET", "/connections/nope/history", ""), 404, "not_found")
	wantError(t, s.do("POST", "/connections/nope/reconnect", ""), 404, "not_found")
	wantError(t, s.do("GET", "/connections/conn-1/reconnect", ""), 405, "method_not_allowed")
}

type healthBody struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Checks []struct {
		Name  string `json:"name"`
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"checks"`
}

// TestHealth: livez is 200; readyz is 200 while the store answers and the
// named connections are connected, 503 otherwise, and verbose lists why.
func TestHealth(t *testing.T) {
	s := newServer(t, nil)
	var hb healthBody
	if r := s.do("GET", "/livez", ""); r.status != 200 {
		t.Fatalf("livez: %d %s", r.status, r.body)
	}
	r := s.do("GET", "/readyz", "")
	r.json(t, &hb)
	if r.status != 200 || hb.Status != "ok" || hb.Checks != nil {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	s.fake.SetUp("p1", false)
	s.do("POST", "/connections", valid)
	connectortest.Eventually(t, "disconnected", func() bool { in, _ := s.m.Get("conn-1"); return in.State == connection.StateDisconnected })
	r = s.do("GET", "/readyz?connection=conn-1&verbose", "")
	hb = healthBody{}
	r.json(t, &hb)
	if r.status != 503 || hb.Status != "unavailable" || len(hb.Checks) != 2 || !hb.Checks[0].OK || hb.Checks[1].OK ||
		!strings.Contains(hb.Checks[1].Error, "disconnected") {
		t.Fatalf("readyz of a connection down: %d %s", r.status, r.body)
	}
	s.fake.SetUp("p1", true)
	connectortest.Eventually(t, "ready", func() bool { return s.do("GET", "/readyz?connection=conn-1", "").status == 200 })
	if r := s.do("GET", "/readyz?connection=nope", ""); r.status != 503 || !strings.Contains(string(r.body), "not found") {
		t.Fatalf("readyz of an unknown connection: %d %s", r.status, r.body)
	}
	s.m.Close()
	if r := s.do("GET", "/readyz", ""); r.status != 503 {
		t.Fatalf("readyz after Close: %d %s", r.status, r.body)
	}
}

// failing is a store whose reads fail.
type failing struct{ store.Store }

func (failing) Get(context.Context, string) (store.Record, error) {
	return store.Record{}, errors.New("disk on fire")
}

func TestReadyzStoreDown(t *testing.T) {
	s := newServer(t, nil)
	m, err := connection.New(context.Background(), failing{memory.New()}, &connection.Options{Registry: s.m.Registry()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	url := listen(t, httpapi.New(m, nil))
	res, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 503 || !strings.Contains(string(b), "store") {
		t.Fatalf("readyz with the store down: %d %s", res.StatusCode, b)
	}
}

type checkBody struct {
	OK     bool   `json:"ok"`
	Reason string `json:"reason"`
	Steps  []struct {
		Name  string `json:"name"`
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"steps"`
}

// TestCheckStored: a stored connection is checked as it is, with its
// secrets; every answer has steps, the last failed one saying where.
func TestCheckStored(t *testing.T) {
	s := newServer(t, nil)
	s.fake.SetUp("p1", true)
	s.do("POST", "/connections", valid)
	var cb checkBody
	r := s.do("POST", "/connections/conn-1/check", "")
	r.json(t, &cb)
	if r.status != 200 || !cb.OK || len(cb.Steps) == 0 || !cb.Steps[0].OK {
		t.Fatalf("check of a stored connection: %d %s", r.status, r.body)
	}
	before := s.fake.Checks("p1")
	r = s.do("POST", "/connections/conn-1/check?role=sink", `{"table":"missing"}`)
	cb = checkBody{}
	r.json(t, &cb)
	if r.status != 502 || cb.Reason != "missing" || len(cb.Steps) == 0 || cb.Steps[len(cb.Steps)-1].OK {
		t.Fatalf("check with a missing table: %d %s", r.status, r.body)
	}
	s.fake.SetAuthFail("p1", true)
	r = s.do("POST", "/connections/conn-1/check", "")
	if r.status != 502 || !strings.Contains(string(r.body), "unauthorized") || strings.Contains(string(r.body), "hunter2") {
		t.Fatalf("check with refused credentials: %d %s", r.status, r.body)
	}
	// The missing table's check reached the peer, as the last one did.
	if s.fake.Checks("p1") != before+2 {
		t.Errorf("checks %d, want %d", s.fake.Checks("p1"), before+2)
	}
	wantError(t, s.do("POST", "/connections/nope/check", ""), 404, "not_found")
	wantError(t, s.do("POST", "/connections/conn-1/check?role=both", ""), 400, "invalid_argument")
	wantError(t, s.do("POST", "/connections/conn-1/check", `{"table":`), 400, "invalid_argument")
	// The metadata routes have steps too.
	r = s.do("POST", "/metadata/sources/connection/fake", `{"addr":"p1"}`)
	cb = checkBody{}
	r.json(t, &cb)
	if len(cb.Steps) == 0 {
		t.Fatalf("metadata check without steps: %d %s", r.status, r.body)
	}
	if s.m.ChecksInFlight() != 0 {
		t.Errorf("%d checks in flight after all ended", s.m.ChecksInFlight())
	}
}

// listen serves h on loopback until the test ends, and returns its URL.
func listen(t *testing.T, h http.Handler) string {
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

type appliedBody struct {
	ID      string   `json:"id"`
	Action  string   `json:"action"`
	Version int64    `json:"version"`
	Error   string   `json:"error"`
	Refs    []string `json:"refs"`
}

func actionsOf(t *testing.T, r response) string {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("apply: %d %s", r.status, r.body)
	}
	var as []appliedBody
	r.json(t, &as)
	var out []string
	for _, a := range as {
		out = append(out, fmt.Sprintf("%s:%s:%d", a.ID, a.Action, a.Version))
	}
	return strings.Join(out, " ")
}

// TestApplyRoute: PUT /connections makes the set match; twice is a
// no-op; dryRun changes nothing; an invalid entry is a 400 naming it.
func TestApplyRoute(t *testing.T) {
	s := newServer(t, nil)
	set := `[{"id":"a","typ":"fake","props":{"addr":"p1","password":"pw"}},{"id":"b","typ":"fake","props":{"addr":"p1"}}]`
	if got := actionsOf(t, s.do("PUT", "/connections", set)); got != "a:create:1 b:create:1" {
		t.Fatalf("first: %s", got)
	}
	if got := actionsOf(t, s.do("PUT", "/connections", set)); got != "a:unchanged:1 b:unchanged:1" {
		t.Fatalf("second: %s", got)
	}
	if got := actionsOf(t, s.do("PUT", "/connections?prune=true&dryRun=true", `[{"id":"a","typ":"fake","props":{"addr":"p2","password":"pw2"}}]`)); got != "a:update:1 b:delete:0" {
		t.Fatalf("dry run: %s", got)
	}
	if in, _ := s.m.Get("b"); in.Version != 1 {
		t.Fatal("a dry run changed b")
	}
	e := wantError(t, s.do("PUT", "/connections", `[{"id":"a","typ":"fake","props":{"addr":"p1"}},{"id":"c","typ":"fake","props":{"adr":"p1"}}]`), 400, "invalid_argument")
	if got := strings.Join(fields(e), ","); got != "[1].addr,[1].adr" {
		t.Fatalf("fields %s", got)
	}
	wantError(t, s.do("PUT", "/connections", `[{"ID":"a"}]`), 400, "invalid_argument")
	wantError(t, s.do("PUT", "/connections", `null`), 400, "invalid_argument")
	if e := wantError(t, s.do("PUT", "/connections", `{"id":"a"}`), 400, "invalid_argument"); !strings.Contains(e.Error, "want a JSON array of connections, [] for none, got an object") {
		t.Errorf("an object for a set: %s", e.Error)
	}
	wantError(t, s.do("PUT", "/connections?prune=yes", `[]`), 400, "invalid_argument")
	if _, err := s.m.Attach(context.Background(), "b", "rule1"); err != nil {
		t.Fatal(err)
	}
	r := s.do("PUT", "/connections?prune=true", `[{"id":"a","typ":"fake","props":{"addr":"p1","password":"******"}}]`)
	if got := actionsOf(t, r); got != "a:unchanged:1 b:refused:0" || !strings.Contains(string(r.body), `"refs":["rule1"]`) {
		t.Fatalf("prune of a held connection: %s", r.body)
	}
}
