package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/connkit/connkit/connector/connectortest"
)

// browser starts a headless Debian chromium for the test, at 1280x800. The
// test skips without chromium, and fails if CONNKIT_CHROMIUM (set by the
// test command, which installs it) says it should be there.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := connectortest.Binary(t, "chromium", "CONNKIT_CHROMIUM")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		acancel()
	})
	// Script errors, console errors and CSP refusals fail the test.
	var mu sync.Mutex
	var problems []string
	err := chromedp.Listen(ctx, func(ev any) {
		var p string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			p = "exception: " + (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error()
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				p = "console.error"
				for _, a := range ev.Args {
					p += " " + string(a.Value)
				}
			}
		case *cdplog.EventEntryAdded:
			// Network entries are the API's own error answers, and the
			// stream's retries while a server restarts.
			if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
				p = string(ev.Entry.Source) + ": " + ev.Entry.Text
			}
		}
		if p != "" {
			mu.Lock()
			problems = append(problems, p)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("the page logged %s", p)
		}
	})
	return ctx
}

// do runs steps with a deadline, failing the test with what on an error.
func do(t *testing.T, ctx context.Context, d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		// What the page showed, to tell why.
		shot, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		html, _ := chromedp.Run(shot, chromedp.OuterHTML(chromedp.CSS("body")))
		t.Fatalf("%s: %v\nthe page:\n%s", what, err, html)
	}
}

// setValue sets the value of the input with id as typing would.
func setValue(id, v string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(e => { e.value = %q; e.dispatchEvent(new Event('input', {bubbles: true})) })(document.getElementById(%q))`, v, id))
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// pageText is everything the page holds that a person or a script in it
// could read: its HTML and the value of every input.
func pageText(t *testing.T, ctx context.Context) string {
	return eval[string](t, ctx, `document.documentElement.outerHTML + "\n" +
		[...document.querySelectorAll('input,select,textarea')].map(e => e.value).join("\n")`)
}

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
	ctx := browser(t)
	b := connectortest.NewBroker(t)
	b.Start()
	bin := buildServer(t)
	p := start(t, bin, filepath.Join(t.TempDir(), "c.db"))
	const secret = "pw-Qx7-never-shown"

	do(t, ctx, 15*time.Second, "open the page",
		chromedp.Navigate(p.url+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`#stream[data-state="live"]`)),
		chromedp.WaitVisible(chromedp.ID("empty")))

	// Bad props: the field's error shows beside it, and nothing is made.
	do(t, ctx, 10*time.Second, "submit bad props",
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
	if got := eval[string](t, ctx, `document.querySelector('[data-error-for="keepAlive"]').textContent`); !strings.Contains(got, "int") {
		t.Errorf("keepAlive's error says %q, want what it takes (an int)", got)
	}
	if got := eval[string](t, ctx, `document.getElementById('p-keepAlive').getAttribute('aria-invalid')`); got != "true" {
		t.Errorf("keepAlive input aria-invalid=%q, want true", got)
	}
	if list := get(t, p.url+"/connections"); list != "[]\n" {
		t.Fatalf("bad props stored something: %s", list)
	}
	// Fix keepAlive, break the id: now only the id's error shows.
	do(t, ctx, 10*time.Second, "fix keepAlive, break the id",
		setValue("p-keepAlive", ""),
		setValue("f-id", "m 1"),
		chromedp.Click(chromedp.ID("f-save")),
		chromedp.WaitVisible(chromedp.CSS(`[data-error-for="id"]`)))
	if got := eval[string](t, ctx, `document.querySelector('[data-error-for="keepAlive"]').textContent`); got != "" {
		t.Errorf("keepAlive's error %q stayed after it was fixed", got)
	}

	// Create through the form; the row becomes connected.
	do(t, ctx, 10*time.Second, "create m1 through the form",
		setValue("f-id", "m1"),
		chromedp.Click(chromedp.ID("f-save")),
		chromedp.WaitNotVisible(chromedp.ID("edit")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="m1"] [data-status="connected"]`)))
	if s := pageText(t, ctx); strings.Contains(s, secret) {
		t.Fatal("the secret is in the page after saving")
	}
	code, body := call(t, "GET", p.url+"/connections/m1", "")
	if code != 200 || body["props"].(map[string]any)["password"] != "******" {
		t.Fatalf("m1 as stored: %d %v", code, body)
	}

	// Edit shows the mask in a password input, never the secret.
	do(t, ctx, 10*time.Second, "open m1's form",
		chromedp.Click(chromedp.CSS(`tr[data-id="m1"] button[data-action="edit"]`)),
		chromedp.WaitVisible(chromedp.ID("p-password")))
	if v := eval[string](t, ctx, `document.getElementById('p-password').value`); v != "******" {
		t.Errorf("the password input holds %q, want the mask", v)
	}
	if typ := eval[string](t, ctx, `document.getElementById('p-password').type`); typ != "password" {
		t.Errorf("the password input is of type %q", typ)
	}
	if s := pageText(t, ctx); strings.Contains(s, secret) {
		t.Fatal("the secret is in the edit form")
	}
	do(t, ctx, 5*time.Second, "cancel the edit",
		chromedp.Click(chromedp.ID("f-cancel")),
		chromedp.WaitNotVisible(chromedp.ID("edit")))

	// The broker stops: the row turns disconnected within 2 s, live.
	eval[bool](t, ctx, `window.notReloaded = true`)
	b.Stop()
	stopped := time.Now()
	do(t, ctx, 2*time.Second, "see m1 disconnected within 2 s of the broker stopping",
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="m1"] [data-status="disconnected"]`)))
	t.Logf("the row turned disconnected %v after the broker stopped", time.Since(stopped))
	if !eval[bool](t, ctx, `window.notReloaded === true`) {
		t.Fatal("the page reloaded")
	}
	if s := pageText(t, ctx); strings.Contains(s, secret) {
		t.Fatal("the secret is in the page")
	}

	if path := os.Getenv("CONNKIT_UI_SCREENSHOT"); path != "" {
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPageRecoversStream: the server restarts under an open page; the
// stream comes back by itself, and the list is read again (the new
// server cannot replay what the old one sent), so a status that changed
// meanwhile shows without a reload.
func TestPageRecoversStream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server and drives a browser")
	}
	ctx := browser(t)
	b := connectortest.NewBroker(t)
	b.Start()
	bin := buildServer(t)
	db := filepath.Join(t.TempDir(), "c.db")
	p := start(t, bin, db)
	if code, body := call(t, "POST", p.url+"/connections", `{"id":"m1","typ":"mqtt","props":{"server":"tcp://`+b.Addr()+`"}}`); code != 201 {
		t.Fatalf("create: %d %v", code, body)
	}
	do(t, ctx, 15*time.Second, "open the page",
		chromedp.Navigate(p.url+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`#stream[data-state="live"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="m1"] [data-status="connected"]`)))
	eval[bool](t, ctx, `window.notReloaded = true`)

	stop(p)
	do(t, ctx, 10*time.Second, "see the stream drop",
		chromedp.WaitVisible(chromedp.CSS(`#stream:not([data-state="live"])`)))
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
	do(t, ctx, 15*time.Second, "see the stream back and the list current",
		chromedp.WaitVisible(chromedp.CSS(`#stream[data-state="live"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="m1"] [data-status="disconnected"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="m2"]`)))
	if !eval[bool](t, ctx, `window.notReloaded === true`) {
		t.Fatal("the page reloaded")
	}
}
