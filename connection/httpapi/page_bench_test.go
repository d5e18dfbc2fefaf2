package httpapi_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi/ui/uitest"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
)

// BenchmarkPageList measures, in chromium, the page with n connections:
// from opening it until the last row is shown (n/1,000 pages of the
// API), and from all n links dropping until every row says so (n status
// events). The page runs in a window that the benchmark's own page
// opens and watches: chromedp's DevTools agents, which follow every
// change of the DOM of the tab they drive, would otherwise be measured
// with it.
func BenchmarkPageList(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			fake := connectortest.NewFake()
			reg := &registry.Registry{}
			reg.Register("fake", fake)
			m, url := servePage(b, reg)
			fake.SetUp("p", true)
			ctx := context.Background()
			for i := range n {
				if _, err := m.Create(ctx, connection.Spec{ID: fmt.Sprintf("c%05d", i), Type: "fake", Props: map[string]any{"addr": "p"}}); err != nil {
					b.Fatal(err)
				}
			}
			br := uitest.New(b)
			// A page of the same origin, to open and watch the page from.
			br.Do(10*time.Second, "open a watcher", chromedp.Navigate(url+"/livez"))
			// until waits in the watcher for the page's rows to match sel
			// (all of them, or none with none), and returns the ms it took.
			until := func(sel string, none bool) float64 {
				b.Helper()
				js := fmt.Sprintf(`new Promise(done => { const t0 = performance.now(); const poll = () => {
					const d = window.page && window.page.document;
					const rows = d ? d.querySelectorAll('#rows tr').length : 0;
					const hit = d ? d.querySelectorAll(%q).length : 0;
					if (rows === %d && (%v ? hit === 0 : hit === %d)) done(performance.now() - t0); else setTimeout(poll, 5);
				}; poll(); })`, sel, n, none, n)
				ctx, cancel := context.WithTimeout(br.Context(), 2*time.Minute)
				defer cancel()
				ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64](js, chromedp.EvalAwaitPromise))
				if err != nil {
					b.Fatal(err)
				}
				return ms
			}
			var list, down float64
			for i := 0; i < b.N; i++ {
				fake.SetUp("p", true)
				connectortest.Eventually(b, "all connected", func() bool {
					in, _ := m.Get(fmt.Sprintf("c%05d", n-1))
					return in.State == connection.StateConnected
				})
				uitest.Eval[bool](br, `window.page && window.page.close(); window.page = window.open('/ui/', 'page'); true`)
				list += until(`#rows tr[data-status="connected"]`, false)
				fake.SetUp("p", false)
				down += until(`#rows tr[data-status="connected"]`, true)
			}
			b.ReportMetric(list/float64(b.N), "ms-list")
			b.ReportMetric(down/float64(b.N), "ms-all-down")
		})
	}
}
