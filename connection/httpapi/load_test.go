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
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
	"github.com/connkit/connkit/connector/connectortest"
	sqlconn "github.com/connkit/connkit/connector/sql"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/sqlite"
)

type loadResult struct {
	requests int
	elapsed  time.Duration
	p50, p99 time.Duration
	statuses map[int]int
}

// loadMix is what a load sends: the type and props of its connections,
// and the share of each operation, in percent.
type loadMix struct {
	typ, props, update string
	// The percent of creates, updates, deletes, gets, lists and attaches;
	// the rest are checks.
	creates, updates, deletes, gets, lists, attaches int
}

// defaultMix is the mix of the first load test: the fake type, with
// attaches and checks.
var defaultMix = loadMix{typ: "fake", props: `{"addr":"p","password":"pw"}`, update: `{"addr":"p","password":"******","retries":5}`,
	creates: 30, updates: 10, deletes: 10, gets: 10, lists: 10, attaches: 10}

// issueMix is the load of the performance goal: sql connections on
// sqlite::memory:, create 40 % / get 20 % / list 5 % / update 20 % /
// delete 15 %.
var issueMix = loadMix{typ: "sql", props: `{"url":"sqlite::memory:"}`, update: `{"url":"sqlite::memory:","maxIdleConns":3}`,
	creates: 40, updates: 20, deletes: 15, gets: 20, lists: 5}

// runLoad sends clients × perClient requests from concurrent HTTP clients
// to one server on the SQLite store (maxBatch writes per transaction),
// over loopback, and checks afterwards that the store holds exactly what
// the acknowledged operations imply.
func runLoad(tb testing.TB, clients, perClient, maxBatch int, mix loadMix) loadResult {
	baseline := runtime.NumGoroutine()
	ctx := context.Background()
	st, err := sqlite.OpenWith(ctx, filepath.Join(tb.TempDir(), "load.db"), &sqlite.Options{MaxBatch: maxBatch})
	if err != nil {
		tb.Fatal(err)
	}
	fake := connectortest.NewFake()
	reg := &registry.Registry{}
	reg.Register("fake", fake)
	reg.Register("sql", sqlconn.Connector{})
	m, err := connection.New(ctx, st, &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(m, &httpapi.Options{Logger: slog.New(slog.DiscardHandler)}))
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	var mu sync.Mutex
	res := loadResult{statuses: map[int]int{}}
	var lat []time.Duration
	do := func(method, path, body string, hdr ...string) (int, []byte) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		start := time.Now()
		r, err := hc.Do(req)
		if err != nil {
			tb.Errorf("%s %s: %v", method, path, err)
			return 0, nil
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		d := time.Since(start)
		mu.Lock()
		lat = append(lat, d)
		res.statuses[r.StatusCode]++
		mu.Unlock()
		return r.StatusCode, b
	}

	// want is, per client, what its acknowledged operations imply: the
	// version of each id it holds.
	wants := make([]map[string]int64, clients)
	var sharedWins int
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			want := map[string]int64{}
			incs := map[string]int64{} // the incarnation of each, for If-Match
			next := 0
			if code, _ := do("POST", "/connections", `{"id":"shared","typ":"`+mix.typ+`","props":`+mix.props+`}`); code == 201 {
				mu.Lock()
				sharedWins++
				mu.Unlock()
			}
			own := func() (string, bool) {
				if len(want) == 0 {
					return "", false
				}
				ids := make([]string, 0, len(want))
				for id := range want {
					ids = append(ids, id)
				}
				sort.Strings(ids)
				return ids[rng.IntN(len(ids))], true
			}
			for range perClient - 1 {
				op, cut := rng.IntN(100), 0
				in := func(share int) bool { cut += share; return op < cut }
				switch {
				case in(mix.creates) || len(want) == 0: // create
					id := fmt.Sprintf("c%d-%d", c, next)
					next++
					if code, b := do("POST", "/connections", `{"id":"`+id+`","typ":"`+mix.typ+`","props":`+mix.props+`}`); code == 201 {
						var in connection.Info
						json.Unmarshal(b, &in)
						want[id], incs[id] = 1, in.Incarnation
					}
				case in(mix.updates): // update, with the version it knows
					id, _ := own()
					code, _ := do("PUT", "/connections/"+id, `{"typ":"`+mix.typ+`","props":`+mix.update+`}`, "If-Match", fmt.Sprintf(`"%d-%d"`, incs[id], want[id]))
					if code == 200 {
						want[id]++
					}
				case in(mix.deletes): // delete
					id, _ := own()
					if code, _ := do("DELETE", "/connections/"+id, ""); code == 204 {
						delete(want, id)
					}
				case in(mix.gets): // get: the version must be the one it holds
					id, _ := own()
					code, b := do("GET", "/connections/"+id, "")
					var in connection.Info
					json.Unmarshal(b, &in)
					if code != 200 || in.Version != want[id] {
						tb.Errorf("GET %s: %d version %d, want %d", id, code, in.Version, want[id])
					}
				case in(mix.lists):
					do("GET", "/connections", "")
				case in(mix.attaches): // a rule attaches and detaches; the REST API sees the ref
					id, _ := own()
					if _, err := m.Attach(ctx, id, fmt.Sprintf("rule%d/source", c)); err != nil {
						tb.Errorf("attach %s: %v", id, err)
						continue
					}
					if code, _ := do("DELETE", "/connections/"+id, ""); code != 409 {
						tb.Errorf("DELETE of an attached connection: %d, want 409", code)
					}
					m.Detach(id, fmt.Sprintf("rule%d/source", c))
				default:
					do("POST", "/metadata/sinks/connection/fake", `{"addr":"p","table":"t"}`)
				}
			}
			mu.Lock()
			wants[c] = want
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.requests = len(lat)

	if sharedWins != 1 {
		tb.Errorf("%d clients created the shared id, want exactly 1", sharedWins)
	}
	if n := res.statuses[500]; n > 0 {
		tb.Errorf("%d requests got 500", n)
	}
	expect := map[string]int64{"shared": 1}
	for _, w := range wants {
		for id, v := range w {
			expect[id] = v
		}
	}
	recs, err := st.List(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range recs {
		got[r.ID] = r.Version
	}
	if len(got) != len(expect) {
		tb.Errorf("store holds %d connections, the acknowledged operations imply %d", len(got), len(expect))
	}
	for id, v := range expect {
		if got[id] != v {
			tb.Errorf("%s: stored version %d, acknowledged %d", id, got[id], v)
		}
	}
	if l := m.List(); len(l) != len(expect) {
		tb.Errorf("Manager lists %d, want %d", len(l), len(expect))
	}

	srv.Close()
	tr.CloseIdleConnections()
	m.Close()
	st.Close()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline+2 {
		tb.Errorf("%d goroutines after the load, %d before", n, baseline)
	}
	slices.Sort(lat)
	res.p50, res.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	return res
}

func TestLoad(t *testing.T) {
	r := runLoad(t, 200, 10, 0, defaultMix)
	t.Logf("%d requests in %v: %.0f req/s, p50 %v, p99 %v, statuses %v",
		r.requests, r.elapsed.Round(time.Millisecond), float64(r.requests)/r.elapsed.Seconds(), r.p50, r.p99, r.statuses)
}

// BenchmarkLoad200 is 200 concurrent clients × 50 requests each, per op,
// of the first load's mix and of the goal's (sql on sqlite::memory:),
// each with one transaction per write (as before group commit) and with
// group commit, in one run.
func BenchmarkLoad200(b *testing.B) {
	for _, mc := range []struct {
		name string
		mix  loadMix
	}{{"mixed", defaultMix}, {"sql", issueMix}} {
		for _, bc := range []struct {
			name  string
			batch int
		}{{"one-per-write", 1}, {"group-commit", 0}} {
			b.Run(mc.name+"/"+bc.name, func(b *testing.B) {
				var reqs int
				var elapsed, p50, p99 time.Duration
				for b.Loop() {
					r := runLoad(b, 200, 50, bc.batch, mc.mix)
					reqs += r.requests
					elapsed += r.elapsed
					p50, p99 = max(p50, r.p50), max(p99, r.p99)
				}
				b.ReportMetric(float64(reqs)/elapsed.Seconds(), "req/s")
				b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
			})
		}
	}
}
