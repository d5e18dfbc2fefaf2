package secret

import (
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/connkit/connkit/connector"
)

// Messages quote what they were given: a driver the host it could not
// resolve, a peer the table it lacks, a parser the value it refused. An
// answer quotes at most 64 bytes of any input (Quoter); and a message
// that may hold a stored secret names the props it quotes rather than
// quoting them (Sanitizer), so that no answer shows where a secret occurs
// inside a value a writer chose.

// maxMessage bounds a message before it is looked at, and after.
const (
	maxScan    = 16 << 10
	maxMessage = 1 << 10
)

// quote is a string of props that a message may quote, and the prop it
// is of.
type quote struct{ s, field string }

// quotes lists the strings of p, with the host, path and other parts of
// those that are URLs or host:ports; skip, if set, leaves out the values
// of secret places.
func quotes(s *connector.Schema, p map[string]any, skip bool) []quote {
	var out []quote
	add := func(str, field string) {
		if str == "" {
			return
		}
		out = append(out, quote{str, field})
		if u, err := url.Parse(str); err == nil {
			for _, part := range []string{u.Scheme, u.Host, u.Hostname(), u.Port(), u.Path, u.Opaque, u.RawQuery, u.Fragment} {
				if part != "" && part != str {
					out = append(out, quote{part, field})
				}
			}
			if u.User != nil {
				out = append(out, quote{u.User.Username(), field})
			}
		}
		if host, port, err := net.SplitHostPort(str); err == nil {
			out = append(out, quote{host, field}, quote{port, field})
		}
	}
	// A value the schema fixes (one of Allowed, a key it names) is no
	// writer's text: it holds no guess, and words like "password" stay.
	var walk func(v any, field string, secretKey func(string) bool)
	named := func(f connector.Field, k string) bool {
		return slices.ContainsFunc(append(slices.Clone(f.SecretKeys), f.EndpointKeys...), func(n string) bool { return strings.EqualFold(n, k) })
	}
	var cur connector.Field
	walk = func(v any, field string, secretKey func(string) bool) {
		switch x := v.(type) {
		case string:
			add(x, field)
		case []string:
			for _, e := range x {
				add(e, field)
			}
		case []any:
			for _, e := range x {
				walk(e, field, nil)
			}
		case map[string]any:
			for k, e := range x {
				if !named(cur, k) {
					add(k, field)
				}
				if secretKey == nil || !secretKey(k) {
					walk(e, field+"."+connector.Short(k), nil)
				}
			}
		}
	}
	for k, v := range p {
		f, ok := s.Field(k)
		cur = f
		switch {
		case ok && len(f.Allowed) > 0:
		case skip && ok && f.Secret && f.Kind == connector.URL:
			// All but its password is the writer's.
			add(withoutPassword(str(v)), k)
		case skip && ok && f.Secret:
		case skip && ok && len(f.SecretKeys) > 0:
			walk(v, k, f.SecretKey)
		default:
			walk(v, connector.Short(k), nil)
		}
	}
	return out
}

// run is a range of a message that quotes a prop.
type run struct {
	start, end int
	field      string
}

// runs returns, in order and apart, the ranges of msg that quote one of
// qs: w bytes or more that a quote holds (ASCII case aside: a driver may
// write a scheme in lower case), or a whole quote of at least whole
// bytes. Its cost is linear in msg and qs.
func runs(msg string, qs []quote, w, whole int) []run {
	field := make([]int32, len(msg)) // 1 + the quote each byte is of; 0 for none
	if len(msg) >= w {
		// The hash of every window of msg, sorted, to look up each
		// window of each quote.
		type win struct {
			h   uint64
			pos int
		}
		wins := make([]win, 0, len(msg)-w+1)
		rollHashes(msg, w, func(pos int, h uint64) { wins = append(wins, win{h, pos}) })
		slices.SortFunc(wins, func(a, b win) int {
			switch {
			case a.h < b.h:
				return -1
			case a.h > b.h:
				return 1
			}
			return a.pos - b.pos
		})
		for qi, q := range qs {
			if len(q.s) < w {
				continue
			}
			rollHashes(q.s, w, func(off int, h uint64) {
				i, _ := slices.BinarySearchFunc(wins, h, func(e win, h uint64) int {
					switch {
					case e.h < h:
						return -1
					case e.h > h:
						return 1
					}
					return 0
				})
				for ; i < len(wins) && wins[i].h == h; i++ {
					p := wins[i].pos
					if foldEqual(msg[p:p+w], q.s[off:off+w]) {
						mark(field, p, p+w, qi)
					}
				}
			})
		}
	}
	lower := asciiLower(msg)
	for qi, q := range qs {
		if len(q.s) < whole || len(q.s) >= w {
			continue
		}
		lq := asciiLower(q.s)
		for from := 0; ; {
			i := strings.Index(lower[from:], lq)
			if i < 0 {
				break
			}
			mark(field, from+i, from+i+len(lq), qi)
			from += i + 1
		}
	}
	var out []run
	for i := 0; i < len(field); {
		if field[i] == 0 {
			i++
			continue
		}
		j := i
		for j < len(field) && field[j] != 0 {
			j++
		}
		out = append(out, run{i, j, qs[field[i]-1].field})
		i = j
	}
	return out
}

func mark(field []int32, from, to, qi int) {
	for k := from; k < to; k++ {
		if field[k] == 0 {
			field[k] = int32(qi + 1)
		}
	}
}

// foldEqual compares a and b, of one length, ASCII case aside.
func foldEqual(a, b string) bool {
	for i := 0; i < len(a); i++ {
		if lowerByte(a[i]) != lowerByte(b[i]) {
			return false
		}
	}
	return true
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = lowerByte(c)
	}
	return string(b)
}

// rollHashes calls f with the offset and hash of every w-byte window of
// s, ASCII case aside.
func rollHashes(s string, w int, f func(off int, h uint64)) {
	const base = 1099511628211
	var pow uint64 = 1
	for range w - 1 {
		pow *= base
	}
	var h uint64
	for i := 0; i < len(s); i++ {
		if i >= w {
			h -= uint64(lowerByte(s[i-w])) * pow
		}
		h = h*base + uint64(lowerByte(s[i]))
		if i >= w-1 {
			f(i-w+1, h)
		}
	}
}

func lowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// scan bounds msg before it is looked at. Cutting it may leave the
// beginning of a secret at its end: that is cut too.
func scan(msg string, secrets []string) string {
	if len(msg) <= maxScan {
		return msg
	}
	msg = connector.Truncate(msg, maxScan)
	for _, s := range secrets {
		for n := min(len(s)-1, len(msg)); n > 0; n-- {
			if strings.HasSuffix(msg, s[:n]) {
				msg = msg[:len(msg)-n]
				break
			}
		}
	}
	return msg
}

// Quoter returns a function for the messages about props p that hold no
// stored secret (a request's own): p's secrets are masked, and every
// quote of p of more than 64 bytes is cut to 64, whatever the message's
// shape. See Sanitizer for the others.
func Quoter(s *connector.Schema, p map[string]any) func(string) string {
	secrets := Values(s, p)
	scrub := Scrubber(s, p)
	qs := quotes(s, p, false)
	return func(msg string) string {
		msg = scrub(scan(msg, secrets))
		rs := runs(msg, qs, 65, 1<<30)
		if len(rs) == 0 {
			return connector.Truncate(msg, maxMessage)
		}
		var b strings.Builder
		last := 0
		for _, r := range rs {
			b.WriteString(msg[last:r.start])
			b.WriteString(connector.Short(msg[r.start:r.end]))
			last = r.end
		}
		b.WriteString(msg[last:])
		return connector.Truncate(b.String(), maxMessage)
	}
}

// Sanitizer returns a function for every message an answer or a status
// shows that can quote p. If p holds a secret (a stored connection's, or
// one laid under a request's props), a message never quotes p's other
// values: each quote of one (16 bytes of it or more, or a whole one of
// 4, ASCII case aside) is named instead, as <field>, and then p's secrets
// are masked. So no answer depends on where a secret occurs inside a
// value a writer chose (a guess of a stored password in a file name,
// say). A fragment of fewer than 16 bytes cut out of a longer value is
// not told from other text: shorter runs would name every host that
// shares the start of an address with the connection's own. If p holds
// none, it is Quoter. Logs, seen by operators only, take Scrubber
// instead.
func Sanitizer(s *connector.Schema, p map[string]any) func(string) string {
	secrets := Values(s, p)
	if len(secrets) == 0 {
		return Quoter(s, p)
	}
	scrub := Scrubber(s, p)
	qs := quotes(s, p, true)
	return func(msg string) string {
		msg = scan(msg, secrets)
		var b strings.Builder
		last := 0
		for _, r := range runs(msg, qs, 16, 4) {
			b.WriteString(msg[last:r.start])
			b.WriteString("<" + r.field + ">")
			last = r.end
		}
		b.WriteString(msg[last:])
		return connector.Truncate(scrub(b.String()), maxMessage)
	}
}
