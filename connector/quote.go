package connector

import (
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// QuoteLimiter returns a function that cuts every quote, in a message, of
// a long string of p (a value, a map's key or value, a list's item, or
// the host or path of one that is a URL or host:port) to its first 64
// bytes, as Short does. Drivers and peers quote what they were given (a
// host they could not resolve, a file they could not read): with it, an
// answer or a status quotes at most 64 bytes of any prop.
func QuoteLimiter(p map[string]any) func(string) string {
	var long []string
	add := func(s string) {
		if len(s) <= 64 {
			return
		}
		q := strconv.Quote(s)
		long = append(long, s, q[1:len(q)-1], url.PathEscape(s), url.QueryEscape(s))
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			add(x)
			if u, err := url.Parse(x); err == nil {
				add(u.Host)
				add(u.Hostname())
				add(u.Path)
				add(u.Opaque)
				add(u.String())
			}
			if host, _, err := net.SplitHostPort(x); err == nil {
				add(host)
			}
		case []string:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for k, e := range x {
				add(k)
				walk(e)
			}
		}
	}
	walk(map[string]any(p))
	if len(long) == 0 {
		return func(s string) string { return s }
	}
	// Longest first, so that a value is cut whole before a part of it.
	sort.Slice(long, func(i, j int) bool { return len(long[i]) > len(long[j]) })
	return func(msg string) string {
		for _, s := range long {
			if strings.Contains(msg, s) {
				msg = strings.ReplaceAll(msg, s, Short(s))
			}
		}
		return msg
	}
}
