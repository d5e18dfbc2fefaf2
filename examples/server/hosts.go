package main

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
)

// guardHosts refuses the requests whose Host header names a host the
// server does not answer to. A site can make its own name resolve to
// 127.0.0.1 (DNS rebinding): its pages are then of the same origin as the
// server to the browser, and pass the API's cross-origin check. So a
// server on loopback answers to IP addresses, localhost and the names of
// allowed only; one on other addresses, to any name unless allowed names
// some.
func guardHosts(next http.Handler, listen net.Addr, allowed []string) http.Handler {
	ta, _ := listen.(*net.TCPAddr)
	if len(allowed) == 0 && (ta == nil || !ta.IP.IsLoopback()) {
		return next
	}
	names := map[string]bool{"localhost": true}
	for _, a := range allowed {
		names[hostName(a)] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := hostName(r.Host)
		if net.ParseIP(host) != nil || names[host] {
			next.ServeHTTP(w, r)
			return
		}
		const msg = "this server does not answer to the host name in the Host header; reach it by IP address or localhost, or name the host in -allowed-hosts"
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(map[string]any{"type": httpapi.ProblemType(connection.CodeCrossOrigin),
			"title": "Cross-origin request", "status": http.StatusForbidden, "detail": msg,
			"code": connection.CodeCrossOrigin, "error": msg})
	})
}

// hostName is the lower-case host of host[:port], without brackets or a
// final dot.
func hostName(hostport string) string {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
}
