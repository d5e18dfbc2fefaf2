package httpapi

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi/ui"
)

// page serves the management page's files at /ui/.
func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	if !ui.Serve(w, r, strings.TrimPrefix(r.URL.Path, "/ui/")) {
		writeError(w, errBody{Code: string(connection.CodeNotFound),
			Error: fmt.Sprintf("no file %s; the page is at /ui/", quote(r.URL.Path))})
	}
}
