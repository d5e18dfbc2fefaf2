// Package uitest drives the management page in a real browser for tests:
// Debian's chromium, headless, through chromedp. A test that opens a page
// is skipped where chromium is missing, and fails instead if
// CONNKIT_CHROMIUM (set by the test command, which installs it) says it
// should be there. Any script error, console error or refusal by the
// page's content security policy fails the test.
package uitest

import (
	"context"
	"fmt"
	"os"
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

// Browser is one headless chromium tab of a test.
type Browser struct {
	t   testing.TB
	ctx context.Context
}

// New starts chromium with a 1280x800 viewport and the options given
// (flags such as host-resolver-rules); it stops when the test ends.
func New(t testing.TB, more ...chromedp.ExecAllocatorOption) *Browser {
	t.Helper()
	exe := connectortest.Binary(t, "chromium", "CONNKIT_CHROMIUM")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		// The machine's network is closed: no calls home.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	opts = append(opts, more...)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		acancel()
	})
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
	for _, enable := range []cdp.Command[cdp.Empty, cdp.Empty]{cdplog.Enable, runtime.Enable} {
		if _, err := chromedp.Call(ctx, enable, cdp.Empty{}); err != nil {
			t.Fatalf("starting %s: %v", exe, err)
		}
	}
	// The window's frame takes some of its size: the page gets all of it.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("the page logged %s", p)
		}
	})
	return &Browser{t: t, ctx: ctx}
}

// Do runs steps within d, and fails the test, showing the page, if they
// do not all succeed.
func (b *Browser) Do(d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		shot, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		html, _ := chromedp.Run(shot, chromedp.OuterHTML(chromedp.CSS("body")))
		b.t.Fatalf("%s: %v\nthe page:\n%s", what, err, html)
	}
}

// Eval returns the value of the expression js in the page.
func Eval[T any](b *Browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// SetValue sets the value of the input with id as typing would, firing
// its input event.
func SetValue(id, v string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(e => { e.value = %q; e.dispatchEvent(new Event('input', {bubbles: true})) })(document.getElementById(%q))`, v, id))
}

// Choose selects value in the select with id, firing its change event.
func Choose(id, v string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(e => { e.value = %q; e.dispatchEvent(new Event('change', {bubbles: true})) })(document.getElementById(%q))`, v, id))
}

// Contents is all the page holds that a person or a script in it could
// read: its HTML and the value of every input.
func (b *Browser) Contents() string {
	b.t.Helper()
	return Eval[string](b, `document.documentElement.outerHTML + "\n" +
		[...document.querySelectorAll('input,select,textarea')].map(e => e.value).join("\n")`)
}

// Screenshot writes a PNG of the viewport to path.
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err == nil {
		err = os.WriteFile(path, png, 0o644)
	}
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
}

// Context is the tab's context, for chromedp calls of the test's own.
func (b *Browser) Context() context.Context { return b.ctx }

// Has reports whether the page's text (its HTML and input values) holds
// s.
func (b *Browser) Has(s string) bool { return strings.Contains(b.Contents(), s) }
