package httpapi_test

import (
	"strings"
	"testing"
	"time"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection/httpapi"
)

func TestCheckRoutes(t *testing.T) {
	s := newServer(t, nil)
	s.fake.SetUp("down", false)
	s.fake.SetAuthFail("auth", true)
	s.fake.SetHang("hang", true)
	if r := s.do("POST", "/connections", `{"id":"stored","typ":"fake","props":{"addr":"auth","password":"hunter2"}}`); r.status != 201 {
		t.Fatal(r.status)
	}
	for _, side := range []string{"sinks", "sources"} {
		path := "/metadata/" + side + "/connection/"
		r := s.do("POST", path+"fake", `{"addr":"ok","topic":"extra props of the sink are fine"}`)
		var ok struct {
			OK        bool  `json:"ok"`
			LatencyMs int64 `json:"latencyMs"`
		}
		r.json(t, &ok)
		if r.status != 200 || !ok.OK || ok.LatencyMs < 0 {
			t.Fatalf("%s ok: %d %s", side, r.status, r.body)
		}
		e := wantError(t, s.do("POST", path+"fake", `{"addr":"down"}`), 502, "unavailable")
		if !strings.Contains(e.Error, "refused") {
			t.Errorf("refused: %+v", e)
		}
		e = wantError(t, s.do("POST", path+"fake", `{"addr":"auth","password":"hunter2"}`), 502, "unavailable")
		if strings.Contains(e.Error, "hunter2") {
			t.Errorf("password in the check error: %s", e.Error)
		}
		wantError(t, s.do("POST", path+"fake", `{"mode":"x"}`), 400, "invalid_argument")
		wantError(t, s.do("POST", path+"kafka", `{}`), 404, "not_found")
		wantError(t, s.do("POST", path+"fake", `[`), 400, "invalid_argument")
		wantError(t, s.do("GET", path+"fake", ``), 405, "method_not_allowed")
		// connectionSelector: the stored props with their real secret.
		e = wantError(t, s.do("POST", path+"fake", `{"connectionSelector":"stored"}`), 502, "unavailable")
		if strings.Contains(e.Error, "hunter2") || !strings.Contains(e.Error, "******") {
			t.Errorf("selector check: %s", e.Error)
		}
		// Another endpoint: the stored secret stays home, nothing is dialed.
		before := s.fake.Checks("ok")
		e = wantError(t, s.do("POST", path+"fake", `{"connectionSelector":"stored","addr":"ok"}`), 400, "invalid_argument")
		if len(e.Fields) != 1 || e.Fields[0].Field != "password" || !strings.Contains(e.Error, "give password again") {
			t.Errorf("selector with another addr: %+v", e)
		}
		if s.fake.Checks("ok") != before {
			t.Error("a selector with another addr was checked")
		}
		if r := s.do("POST", path+"fake", `{"connectionSelector":"stored","addr":"ok","password":"mine"}`); r.status != 200 {
			t.Errorf("selector with the body's addr and password: %d %s", r.status, r.body)
		}
		e = wantError(t, s.do("POST", path+"fake", `{"connectionSelector":"nope"}`), 400, "invalid_argument")
		if len(e.Fields) != 1 || e.Fields[0].Field != "connectionSelector" {
			t.Errorf("selector of a missing connection: %+v", e)
		}
	}
	// Reasons are in the body.
	var e struct {
		Reason string `json:"reason"`
	}
	s.do("POST", "/metadata/sinks/connection/fake", `{"addr":"down"}`).json(t, &e)
	if e.Reason != "refused" {
		t.Errorf("reason %q, want refused", e.Reason)
	}
	s.do("POST", "/metadata/sinks/connection/fake", `{"addr":"auth"}`).json(t, &e)
	if e.Reason != "unauthorized" {
		t.Errorf("reason %q, want unauthorized", e.Reason)
	}
}

func TestCheckTimeoutAndCap(t *testing.T) {
	// The server's checker is built from the Manager's registry inside
	// newServer; a second server shares that registry for its own checker.
	s := newServer(t, nil)
	c := check.New(&check.Options{Registry: s.m.Registry(), Timeout: 100 * time.Millisecond, MaxInFlight: 1})
	s2 := newServerWith(t, s, &httpapi.Options{Checker: c})
	s.fake.SetHang("hang", true)
	start := time.Now()
	e := wantError(t, s2.do("POST", "/metadata/sinks/connection/fake", `{"addr":"hang"}`), 504, "deadline_exceeded")
	if time.Since(start) > 2*time.Second || !strings.Contains(e.Error, "no answer within 100ms") {
		t.Errorf("timeout answer after %v: %s", time.Since(start), e.Error)
	}
	// Hold the one slot with a stalled check, then ask again.
	release := s.fake.Block("stall")
	defer release()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s2.do("POST", "/metadata/sinks/connection/fake", `{"addr":"stall"}`)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for s.fake.Checks("stall") == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	r := s2.do("POST", "/metadata/sinks/connection/fake", `{"addr":"ok"}`)
	wantError(t, r, 503, "resource_exhausted")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	release()
	<-done
}
