package uitest_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/connkit/connkit/connection/httpapi/ui/uitest"
)

// A test of a page: chromium opens it, a click, and a check of what it
// shows. It needs chromium, so it does not run as an example.
func Example() {
	var t *testing.T         // the test's
	var srv *httptest.Server // serving the API and its page
	br := uitest.New(t)
	br.Do(10*time.Second, "open the form",
		chromedp.Navigate(srv.URL+"/ui/"),
		chromedp.Click(chromedp.ID("new")),
		chromedp.WaitVisible(chromedp.ID("f-id")))
	if uitest.Eval[string](br, `document.activeElement.id`) != "f-id" {
		t.Error("the form opened without focus on its first field")
	}
}
