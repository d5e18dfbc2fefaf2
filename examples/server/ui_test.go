package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/connkit/connkit/connection/httpapi/ui/uitest"
	"github.com/connkit/connkit/connector/connectortest"
)

func get(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestPage drives the management page in a real browser against this
// server and a real mosquitto: a connection created through the form
// becomes connected, turns disconnected within 2 s of the broker
// stopping without a reload, bad props show their field's error, and the
// secret typed in never shows in the page.
func TestPage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server and drives a browser")
	}
	br := uitest.New(t)
	b := connectortest.NewBroker(t)
	b.Start()
	bin := buildServer(t)
	p := start(t, bin, filepath.Join(t.TempDir(), "c.db"))
	const secret = "pw-Qx7-never-shown"

	br.Do(15*time.Second, "open the page",
		chromedp.Navigate(p.url+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`#stream[data-state="live"]`)),
		chromedp.WaitVisible(chromedp.ID("empty")))

	// Bad props: the field's error shows beside it, and nothing is made.
	br.Do(10*time.Second, "submit bad props",
		chromedp.Click(chromedp.ID("new")),
		chromedp.WaitVisible(chromedp.ID("f-id")),
		chromedp.SendKeys(chromedp.ID("f-id"), "m1"),
		chromedp.SendKeys(chromedp.ID("f-typ"), "mqtt"),
		chromedp.WaitVisible(chromedp.ID("p-keepAlive")),
		chromedp.SendKeys(chromedp.ID("p-server"), "tcp://"+b.Addr()),
		chromedp.SendKeys(chromedp.ID("p-password"), secret),
		chromedp.SendKeys(chromedp.ID("p-keepAlive"), "soon"),
		chromedp.Click(chromedp.ID("f-save")),
		chromedp.WaitVisible(chromedp.CSS(`[data-error-for="keepAlive"]`)))
	if got := uitest.Eval[string](br, `document.querySelector('[data-error-for="keepAlive"]').textContent`); !strings.Contains(got, "int") {
		t.Errorf("keepAlive's error says %q, want what it takes (an int)", got)
	}
	if got := uitest.Eval[string](br, `document.getElementById('p-keepAlive').getAttribute('aria-invalid')`); got != "true" {
		t.Errorf("keepAlive input aria-invalid=%q, want true", got)
	}
	if list := get(t, p.url+"/connections"); list != "[]\n" {
		t.Fatalf("bad props stored something: %s", list)
	}
	// Fix keepAlive, break the id: now only the id's error shows.
	br.Do(10*time.Second, "fix keepAlive, break the id",
		uitest.SetValue("p-keepAlive", ""),
		uitest.SetValue("f-id", "m 1"),
		chromedp.Click(chromedp.ID("f-save")),
		chromedp.WaitVisible(chromedp.CSS(`[data-error-for="id"]`)))
	if got := uitest.Eval[string](br, `document.querySelector('[data-error-for="keepAlive"]').textContent`); got != "" {
		t.Errorf("keepAlive's error %q stayed after it was fixed", got)
	}

	// Create through the form; the row becomes connected.
	br.Do(10*time.Second, "create m1 through the form",
		uitest.SetValue("f-id", "m1"),
		chromedp.Click(chromedp.ID("f-save")),
		chromedp.WaitNotVisible(chromedp.ID("edit")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="m1"] [data-status="connected"]`)))
	if br.Has(secret) {
		t.Fatal("the secret is in the page after saving")
	}
	code, body := call(t, "GET", p.url+"/connections/m1", "")
	if code != 200 || body["props"].(map[string]any)["password"] != "******" {
		t.Fatalf("m1 as stored: %d %v", code, body)
	}

	// Edit shows the mask in a password input, never the secret.
	br.Do(10*time.Second, "open m1's form",
		chromedp.Click(chromedp.CSS(`tr[data-id="m1"] button[data-action="edit"]`)),
		chromedp.WaitVisible(chromedp.ID("p-password")))
	if v := uitest.Eval[string](br, `document.getElementById('p-password').value`); v != "******" {
		t.Errorf("the password input holds %q, want the mask", v)
	}
	if typ := uitest.Eval[string](br, `document.getElementById('p-password').type`); typ != "password" {
		t.Errorf("the password input is of type %q", typ)
	}
	if br.Has(secret) {
		t.Fatal("the secret is in the edit form")
	}
	br.Do(5*time.Second, "cancel the edit",
		chromedp.Click(chromedp.ID("f-cancel")),
		chromedp.WaitNotVisible(chromedp.ID("edit")))

	// The broker stops: the row turns disconnected within 2 s, live.
	uitest.Eval[bool](br, `window.notReloaded = true`)
	b.Stop()
	stopped := time.Now()
	br.Do(2*time.Second, "see m1 disconnected within 2 s of the broker stopping",
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="m1"] [data-status="disconnected"]`)))
	t.Logf("the row turned disconnected %v after the broker stopped", time.Since(stopped))
	if !uitest.Eval[bool](br, `window.notReloaded === true`) {
		t.Fatal("the page reloaded")
	}
	if br.Has(secret) {
		t.Fatal("the secret is in the page")
	}

	// The README's picture: CONNKIT_UI_SCREENSHOT=docs/ui.png go test -run 'TestPage$' ./examples/server
	if path := os.Getenv("CONNKIT_UI_SCREENSHOT"); path != "" {
		b.Start()
		for _, c := range []string{
			`{"id":"orders-db","typ":"sql","props":{"url":"mysql://app:secret@127.0.0.1:1/orders"}}`,
			`{"id":"telemetry","typ":"mqtt","props":{"server":"tcp://` + b.Addr() + `","username":"edge"}}`,
		} {
			if code, body := call(t, "POST", p.url+"/connections", c); code != 201 {
				t.Fatalf("create: %d %v", code, body)
			}
		}
		if code, body := call(t, "POST", p.url+"/connections/m1/reconnect", ""); code != 202 {
			t.Fatalf("reconnect: %d %v", code, body)
		}
		br.Do(10*time.Second, "see the connections",
			chromedp.WaitVisible(chromedp.CSS(`tr[data-id="m1"] [data-status="connected"]`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-id="telemetry"] [data-status="connected"]`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-id="orders-db"] [data-status="disconnected"]`)))
		br.Screenshot(path)
	}
}

// TestPageRecoversStream: the server restarts under an open page; the
// stream comes back by itself with Last-Event-ID, the new server cannot
// replay what the old one sent and answers reset, and the page lists
// again: a connection deleted meanwhile goes, a status that changed
// shows, all without a reload.
func TestPageRecoversStream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server and drives a browser")
	}
	br := uitest.New(t)
	b := connectortest.NewBroker(t)
	b.Start()
	bin := buildServer(t)
	db := filepath.Join(t.TempDir(), "c.db")
	p := start(t, bin, db)
	if code, body := call(t, "POST", p.url+"/connections", `{"id":"m1","typ":"mqtt","props":{"server":"tcp://`+b.Addr()+`"}}`); code != 201 {
		t.Fatalf("create: %d %v", code, body)
	}
	br.Do(15*time.Second, "open the page",
		chromedp.Navigate(p.url+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`#stream[data-state="live"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="m1"] [data-status="connected"]`)))
	uitest.Eval[bool](br, `window.notReloaded = true`)
	// An event, so that the stream has an id to resume from.
	if code, body := call(t, "POST", p.url+"/connections", `{"id":"m0","typ":"mqtt","props":{"server":"tcp://`+b.Addr()+`"}}`); code != 201 {
		t.Fatalf("create m0: %d %v", code, body)
	}
	br.Do(10*time.Second, "see m0", chromedp.WaitVisible(chromedp.CSS(`tr[data-id="m0"]`)))

	stop(p)
	br.Do(10*time.Second, "see the stream drop",
		chromedp.WaitVisible(chromedp.CSS(`#stream:not([data-state="live"])`)))
	// m0 goes while the page cannot hear of it: a server on another
	// address deletes it. Only a list after the new server's reset can
	// tell the page.
	other := startWith(t, bin, "-db", db)
	if code, body := call(t, "DELETE", other.url+"/connections/m0", ""); code != 204 {
		t.Fatalf("delete m0: %d %v", code, body)
	}
	stop(other)
	b.Stop()
	// The same address, so that the page's stream finds it again.
	addr := strings.TrimPrefix(p.url, "http://")
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("the old server still listens")
	}
	p2 := startWith(t, bin, "-db", db, "-addr", addr)
	if code, body := call(t, "POST", p2.url+"/connections", `{"id":"m2","typ":"mqtt","props":{"server":"tcp://`+b.Addr()+`"}}`); code != 201 {
		t.Fatalf("create m2: %d %v", code, body)
	}
	br.Do(15*time.Second, "see the stream back and the list current",
		chromedp.WaitVisible(chromedp.CSS(`#stream[data-state="live"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="m1"] [data-status="disconnected"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="m2"]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`tr[data-id="m0"]`)))
	if !uitest.Eval[bool](br, `window.notReloaded === true`) {
		t.Fatal("the page reloaded")
	}
}

// TestPageBehindProxy: behind a proxy that sets Host to its upstream's
// (nginx's default, Go's ReverseProxy with SetURL), a browser on plain
// HTTP sends no Sec-Fetch-Site, and the Origin it sends is not the Host
// the server sees: the page's changes are refused as cross-origin, with
// a message that says what to do, until -trusted-origin names the page's
// origin.
func TestPageBehindProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server and drives a browser")
	}
	bin := buildServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := "http://edge.test:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	var upstream atomic.Pointer[url.URL]
	proxy := &http.Server{Handler: &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(upstream.Load())
	}}}
	go proxy.Serve(ln)
	t.Cleanup(func() { proxy.Close() })
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "c.db"), "-trusted-origin", "edge.test")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "give scheme://host") {
		t.Errorf("-trusted-origin edge.test: %v\n%s", err, out)
	}
	br := uitest.New(t, chromedp.Flag("host-resolver-rules", "MAP edge.test 127.0.0.1"))

	create := func(id string) {
		t.Helper()
		br.Do(15*time.Second, "open the page through the proxy and create "+id,
			chromedp.Navigate(origin+"/ui/"),
			chromedp.WaitVisible(chromedp.CSS(`#stream[data-state="live"]`)),
			chromedp.Click(chromedp.ID("new")),
			chromedp.WaitVisible(chromedp.ID("f-id")),
			uitest.SetValue("f-id", id),
			uitest.Choose("f-typ", "sql"),
			chromedp.WaitVisible(chromedp.ID("p-url")),
			uitest.SetValue("p-url", "sqlite:"+filepath.Join(t.TempDir(), id+".db")),
			chromedp.Click(chromedp.ID("f-save")),
			chromedp.WaitVisible(chromedp.CSS(`#form-error:not([hidden]), tr[data-id="`+id+`"]`)))
	}
	for _, trust := range []bool{false, true} {
		args := []string{"-db", filepath.Join(t.TempDir(), "c.db")}
		if trust {
			args = append(args, "-trusted-origin", origin+"/") // as copied from an address bar
		}
		p := startWith(t, bin, args...)
		u, _ := url.Parse(p.url)
		upstream.Store(u)
		create("c1")
		msg := uitest.Eval[string](br, `document.getElementById('form-error').textContent`)
		if !trust && !strings.Contains(msg, "proxy") {
			t.Errorf("untrusted behind the proxy, the form says %q; want the refusal and what to do", msg)
		}
		if trust && msg != "" {
			t.Errorf("trusted behind the proxy, the form says %q", msg)
		}
		stop(p)
	}
}

// TestHostNames: on loopback the server answers to IP addresses,
// localhost and the names of -allowed-hosts only, so that a site whose
// name was made to resolve to 127.0.0.1 (DNS rebinding) gets nothing from
// it, not even the page.
func TestHostNames(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server")
	}
	bin := buildServer(t)
	p := startWith(t, bin, "-db", filepath.Join(t.TempDir(), "c.db"), "-allowed-hosts", "edge.test")
	port := strings.TrimPrefix(p.url, "http://127.0.0.1:")
	for host, want := range map[string]int{
		"127.0.0.1:" + port: 200, "localhost:" + port: 200, "[::1]:" + port: 200, "LOCALHOST.": 200,
		"edge.test:" + port: 200, "evil.example:" + port: 403, "127.0.0.1.evil.example": 403,
	} {
		for _, path := range []string{"/connections", "/ui/"} {
			req, _ := http.NewRequest("GET", p.url+path, nil)
			req.Host = host
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != want {
				t.Errorf("GET %s with Host %q: %d, want %d", path, host, res.StatusCode, want)
			}
			if want == 403 && (!strings.Contains(string(b), `"code":"cross_origin"`) || !strings.Contains(string(b), "-allowed-hosts")) {
				t.Errorf("Host %q refused with %s", host, b)
			}
		}
	}
}
