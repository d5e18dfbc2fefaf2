package sql_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
	"github.com/connkit/connkit/connector/sql"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store/memory"
)

// TestMariaDBDiesUnderChecks: sink checks run over HTTP without pause
// while MariaDB is killed, then frozen. Every answer comes within the
// timeout: 200 before, 502 once it is dead, 504 while it is frozen.
func TestMariaDBDiesUnderChecks(t *testing.T) {
	_, user, pw := mysqlServer(t)
	d := newMariaDB(t, user, pw)
	d.Start()
	reg := &registry.Registry{}
	reg.Register(sql.Type, sql.Connector{})
	m, err := connection.New(context.Background(), memory.New(), &connection.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const timeout = 2 * time.Second
	c := check.New(&check.Options{Registry: reg, Timeout: timeout})
	srv := httptest.NewServer(httpapi.New(m, &httpapi.Options{Checker: c}))
	defer srv.Close()
	body := `{"url":"` + d.URL() + `","table":"nope"}`
	checkOnce := func() (int, time.Duration) {
		start := time.Now()
		res, err := http.Post(srv.URL+"/metadata/sinks/connection/sql", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode, time.Since(start)
	}
	// The table does not exist: a live server answers 502 "missing" too,
	// so make it exist first.
	db, err := sql.DB(m.Attach(context.Background(), mustCreate(t, m, d.URL()), "setup"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE nope (a INT)`); err != nil {
		t.Fatal(err)
	}
	m.Detach("db", "setup")
	if code, _ := checkOnce(); code != 200 {
		t.Fatalf("check against the live server: %d", code)
	}

	var mu sync.Mutex
	var codes []int
	var slowest time.Duration
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, d := checkOnce()
				mu.Lock()
				codes = append(codes, code)
				slowest = max(slowest, d)
				mu.Unlock()
			}
		}()
	}
	// Kill it once checks are under way.
	for started := time.Now(); ; {
		mu.Lock()
		n := len(codes)
		mu.Unlock()
		if n >= 4 {
			break
		}
		if time.Since(started) > 10*time.Second {
			t.Fatal("the checks did not start")
		}
		time.Sleep(time.Millisecond)
	}
	d.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(codes)
		last := 0
		if n > 0 {
			last = codes[n-1]
		}
		mu.Unlock()
		if last == http.StatusBadGateway {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 502 after the kill; codes %v", codes)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for _, code := range codes {
		if code != 200 && code != 502 {
			t.Errorf("a check during the kill answered %d", code)
		}
	}
	if slowest > timeout+time.Second {
		t.Errorf("a check took %v with a timeout of %v", slowest, timeout)
	}
	t.Logf("%d checks while MariaDB died; the slowest took %v", len(codes), slowest)

	// Frozen: the server holds the connection and says nothing.
	d.Start()
	if err := d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer d.cmd.Process.Signal(syscall.SIGCONT)
	code, took := checkOnce()
	if code != http.StatusGatewayTimeout || took > timeout+time.Second {
		t.Errorf("check against a frozen server: %d after %v, want 504 within %v", code, took, timeout)
	}
	d.cmd.Process.Signal(syscall.SIGCONT)
}

func mustCreate(t *testing.T, m *connection.Manager, url string) string {
	if _, err := m.Create(context.Background(), connection.Spec{ID: "db", Type: sql.Type, Props: map[string]any{"url": url}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for in, _ := m.Get("db"); in.State != connection.StateConnected; in, _ = m.Get("db") {
		if time.Now().After(deadline) {
			t.Fatalf("not connected: %+v", in.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return "db"
}
