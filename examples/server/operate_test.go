package main

import (
	"bufio"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connkit/connkit/connector/connectortest"
)

// TestOperateBrokerOutage: with a real mosquitto stopped, an operator
// sees the connection drop on the event stream, in /metrics, in /readyz
// and in its history; once the broker is back, a reconnect brings it back
// within a second.
func TestOperateBrokerOutage(t *testing.T) {
	b := connectortest.NewBroker(t)
	b.Start()
	bin := buildServer(t)
	p := start(t, bin, filepath.Join(t.TempDir(), "c.db"))

	req, _ := http.NewRequest("GET", p.url+"/events?connection=m1", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { res.Body.Close(); <-done })
	// waitLine returns the first data line of an event of kind whose data
	// holds want.
	waitLine := func(kind, want string) string {
		t.Helper()
		deadline := time.After(10 * time.Second)
		var event string
		for {
			select {
			case l := <-lines:
				if e, ok := strings.CutPrefix(l, "event: "); ok {
					event = e
				}
				if d, ok := strings.CutPrefix(l, "data: "); ok && event == kind && strings.Contains(d, want) {
					return d
				}
			case <-deadline:
				t.Fatalf("no %s event with %s within 10s", kind, want)
			}
		}
	}
	metric := func(want string) bool {
		res, err := http.Get(p.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return strings.Contains(string(b), want)
	}

	if code, body := call(t, "POST", p.url+"/connections", `{"id":"m1","typ":"mqtt","props":{"server":"tcp://`+b.Addr()+`"}}`); code != 201 {
		t.Fatalf("create: %d %v", code, body)
	}
	waitLine("status", `"status":"connected"`)
	if !metric(`connkit_connection_state{connection="m1",state="connected",type="mqtt"} 1`) {
		t.Fatal("/metrics does not say m1 is connected")
	}
	if code, body := call(t, "GET", p.url+"/readyz?connection=m1", ""); code != 200 {
		t.Fatalf("readyz with m1 up: %d %v", code, body)
	}

	b.Stop()
	waitLine("status", `"status":"disconnected"`)
	// Right after the event, with no refresh to wait for.
	if !metric(`connkit_connection_state{connection="m1",state="disconnected",type="mqtt"} 1`) {
		t.Fatal("/metrics does not say m1 is disconnected")
	}
	if code, body := call(t, "GET", p.url+"/readyz?connection=m1", ""); code != 503 || !strings.Contains(body["error"].(string), "disconnected") {
		t.Fatalf("readyz with m1 down: %d %v", code, body)
	}
	res2, err := http.Get(p.url + "/connections/m1/history")
	if err != nil {
		t.Fatal(err)
	}
	hist, _ := io.ReadAll(res2.Body)
	res2.Body.Close()
	if !strings.Contains(string(hist), `"state":"disconnected"`) || !strings.Contains(string(hist), `"state":"connected"`) {
		t.Fatalf("history: %s", hist)
	}

	b.Start()
	start := time.Now()
	if code, body := call(t, "POST", p.url+"/connections/m1/reconnect", ""); code != 202 {
		t.Fatalf("reconnect: %d %v", code, body)
	}
	waitLine("status", `"status":"connected"`)
	if d := time.Since(start); d > time.Second {
		t.Errorf("connected %v after the reconnect, want within 1s", d)
	}
	if code, _ := call(t, "GET", p.url+"/readyz?connection=m1", ""); code != 200 {
		t.Fatalf("readyz once m1 is back: %d", code)
	}
	// An open event stream does not hold up a shutdown, and ends cleanly.
	start = time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the event stream did not end at shutdown")
	}
	<-p.done // the server's log read to its end
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("server exit: %v\n%s", err, p.logs)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown with a stream open took %v", d)
	}
}
