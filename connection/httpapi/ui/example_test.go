package ui_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/connkit/connkit/connection/httpapi/ui"
)

// httpapi serves the page this way at /ui/; a name that is not one of the
// page's files is left to the caller.
func ExampleServe() {
	rec := httptest.NewRecorder()
	ui.Serve(rec, httptest.NewRequest("GET", "/ui/", nil), "")
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("X-Frame-Options"))
	fmt.Println(ui.Serve(httptest.NewRecorder(), httptest.NewRequest("GET", "/ui/x", nil), "x"))
	// Output:
	// 200 text/html; charset=utf-8 DENY
	// false
}
