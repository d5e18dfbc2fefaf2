package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connkit/connkit/store/etcd/etcdtest"
)

// TestThreeInstancesOnEtcd runs three servers on a three-member etcd
// cluster: what one writes is live on the others within a second; one id
// created on all three at once is created once; one etcd member down
// changes nothing; an instance killed and restarted serves every
// connection again; etcd stopped entirely and started again loses
// nothing acknowledged.
func TestThreeInstancesOnEtcd(t *testing.T) {
	ms := etcdtest.Cluster(t, 3)
	bin := buildServer(t)
	url := "etcd://" + strings.Join(etcdtest.Endpoints(ms), ",") + "/e2e"
	args := func(i int) []string { return []string{"-store", url, "-instance", fmt.Sprintf("i%d", i)} }
	srv := make([]*proc, 3)
	for i := range srv {
		srv[i] = startWith(t, bin, args(i)...)
	}
	acked := map[string]bool{}
	body := func(id string) string {
		return `{"id":"` + id + `","typ":"sql","props":{"url":"sqlite::memory:"}}`
	}
	// on polls GET id on server i until cond holds, within d.
	on := func(i int, id string, d time.Duration, what string, cond func(code int, v map[string]any) bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			code, v := call(t, "GET", srv[i].url+"/connections/"+id, "")
			if cond(code, v) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("server %d, %s: not %s within %v: %d %v", i, id, what, d, code, v)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	connected := func(code int, v map[string]any) bool { return code == 200 && v["status"] == "connected" }

	if code, v := call(t, "POST", srv[0].url+"/connections", body("c1")); code != 201 {
		t.Fatalf("create: %d %v", code, v)
	}
	acked["c1"] = true
	for _, i := range []int{1, 2} {
		on(i, "c1", time.Second, "connected", connected)
	}
	if code, v := call(t, "PUT", srv[1].url+"/connections/c1", `{"typ":"sql","props":{"url":"sqlite::memory:","maxIdleConns":2}}`); code != 200 {
		t.Fatalf("update: %d %v", code, v)
	}
	for _, i := range []int{0, 2} {
		on(i, "c1", time.Second, "at version 2", func(code int, v map[string]any) bool { return code == 200 && v["version"] == float64(2) })
	}
	if code, _ := call(t, "DELETE", srv[2].url+"/connections/c1", ""); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	delete(acked, "c1")
	for _, i := range []int{0, 1} {
		on(i, "c1", time.Second, "gone", func(code int, _ map[string]any) bool { return code == 404 })
	}

	// One id, created on all three at once.
	codes := make([]int, 3)
	var wg sync.WaitGroup
	for i := range srv {
		wg.Add(1)
		go func() { defer wg.Done(); codes[i], _ = call(t, "POST", srv[i].url+"/connections", body("race")) }()
	}
	wg.Wait()
	if n := strings.Count(fmt.Sprint(codes), "201"); n != 1 || strings.Count(fmt.Sprint(codes), "409") != 2 {
		t.Fatalf("one id created on three instances at once: %v, want one 201 and two 409", codes)
	}
	acked["race"] = true

	// One etcd member down: every instance still writes and follows.
	ms[0].Stop()
	for i := range srv {
		id := fmt.Sprintf("m%d", i)
		if code, v := call(t, "POST", srv[i].url+"/connections", body(id)); code != 201 {
			t.Fatalf("create on %d with one etcd member down: %d %v", i, code, v)
		}
		acked[id] = true
		on((i+1)%3, id, 5*time.Second, "connected", connected)
	}
	ms[0].Start()

	// An instance killed and started again serves every connection.
	srv[1].cmd.Process.Signal(syscall.SIGKILL)
	srv[1].cmd.Wait()
	srv[1] = startWith(t, bin, args(1)...)
	for id := range acked {
		on(1, id, 5*time.Second, "connected after a restart", connected)
	}

	// etcd stopped entirely, then back: nothing acknowledged is lost.
	for _, m := range ms {
		m.Stop()
	}
	code, v := call(t, "POST", srv[2].url+"/connections", body("down"))
	if code != http.StatusServiceUnavailable && code != http.StatusBadGateway {
		t.Errorf("create with etcd stopped: %d %v, want 503 or 502", code, v)
	}
	for _, m := range ms {
		m.Start()
	}
	for _, m := range ms {
		m.WaitHealthy(30 * time.Second)
	}
	for i := range srv {
		for id := range acked {
			on(i, id, 10*time.Second, "kept through the outage", connected)
		}
	}
	if code, v := call(t, "POST", srv[0].url+"/connections", body("back")); code != 201 {
		t.Fatalf("create after etcd came back: %d %v", code, v)
	}
	on(2, "back", 5*time.Second, "connected", connected)
}
