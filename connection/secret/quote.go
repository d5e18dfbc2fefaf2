package secret

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/connkit/connkit/connector"
)

// Messages quote what they were given: a driver the host it could not
// resolve, a database the statement it could not parse, a parser the
// value it refused. An answer quotes at most 64 bytes of any input
// (Quoter); and a message that may hold a stored secret names the
// writer's values it quotes rather than quoting them (Sanitizer), so that
// no answer shows where, or whether, a secret occurs inside a value a
// writer chose.

// maxScan bounds a message before it is looked at; maxMessage after.
const (
	maxScan    = 16 << 10
	maxMessage = 1 << 10
)

// quote is a string of props that a message may quote, and the prop it
// is of; endpoint says the writer could not have chosen it beside a
// stored secret (it would have had to give the secret again).
type quote struct {
	s, field string
	endpoint bool
}

// quotes lists the strings of p in the forms a message may quote them
// (as they are, Go- or JSON-escaped, URL-escaped), with the parts of
// those that are URLs or host:ports. Secrets are left out: Scrubber
// masks them.
func quotes(s *connector.Schema, p map[string]any) []quote {
	var out []quote
	seen := map[quote]bool{}
	put := func(q quote) {
		if q.s != "" && !seen[q] {
			seen[q] = true
			out = append(out, q)
		}
	}
	add := func(str, field string, endpoint bool) {
		q := strconv.Quote(str)
		j, _ := json.Marshal(str)
		for _, form := range []string{str, q[1 : len(q)-1], string(j[1 : len(j)-1]), url.PathEscape(str), url.QueryEscape(str)} {
			put(quote{form, field, endpoint})
		}
		if u, err := url.Parse(str); err == nil {
			for _, part := range []string{u.Scheme, u.Host, u.Hostname(), u.Port(), u.Path, u.Opaque, u.RawQuery, u.Fragment} {
				put(quote{part, field, endpoint})
			}
			if u.User != nil {
				put(quote{u.User.Username(), field, endpoint})
			}
		}
		if host, port, err := net.SplitHostPort(str); err == nil {
			put(quote{host, field, endpoint})
			put(quote{port, field, endpoint})
		}
	}
	var walk func(v any, field string, endpoint bool, f connector.Field, inMap bool)
	walk = func(v any, field string, endpoint bool, f connector.Field, inMap bool) {
		switch x := v.(type) {
		case string:
			add(x, field, endpoint)
		case []string:
			for _, e := range x {
				add(e, field, endpoint)
			}
		case []any:
			for _, e := range x {
				walk(e, field, endpoint, connector.Field{}, false)
			}
		case map[string]any:
			for k, e := range x {
				// A key the schema names is no writer's text.
				named := slices.ContainsFunc(append(slices.Clone(f.SecretKeys), f.EndpointKeys...), func(n string) bool { return n != "*" && strings.EqualFold(n, k) })
				if !named {
					add(k, field, endpoint)
				}
				if !f.SecretKey(k) {
					ep := endpoint || slices.ContainsFunc(f.EndpointKeys, func(n string) bool { return strings.EqualFold(n, k) })
					walk(e, field+"."+connector.Short(k), ep, connector.Field{}, true)
				}
			}
		}
	}
	for k, v := range p {
		f, ok := s.Field(k)
		switch {
		case ok && len(f.Allowed) > 0:
			// One of a few values the schema fixes: no writer's text.
		case ok && f.Secret && f.Kind == connector.URL:
			// All but its password, as it is masked: its own endpoint.
			add(maskURL(str(v)), k, true)
			add(withoutPassword(str(v)), k, true)
		case ok && f.Secret:
		default:
			walk(v, connector.Short(k), ok && f.Endpoint, f, false)
		}
	}
	return out
}

// run is a range of a message that quotes a prop.
type run struct {
	start, end int
	field      string
}

// seed makes the window hashes unforeseeable: a writer cannot choose
// values whose windows collide.
var seed = func() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])%(mersenne-2) + 2
}()

const mersenne = 1<<61 - 1

func mulmod(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	// (hi*2^64 + lo) mod 2^61-1
	r := (hi<<3 | lo>>61) + (lo & mersenne)
	if r >= mersenne {
		r -= mersenne
	}
	return r
}

// rollHashes calls f with the offset and hash of every w-byte window of
// s, ASCII case aside.
func rollHashes(s string, w int, f func(off int, h uint64)) {
	var pow uint64 = 1
	for range w - 1 {
		pow = mulmod(pow, seed)
	}
	var h uint64
	for i := 0; i < len(s); i++ {
		if i >= w {
			h = (h + mersenne - mulmod(uint64(lowerByte(s[i-w])), pow)) % mersenne
		}
		h = (mulmod(h, seed) + uint64(lowerByte(s[i]))) % mersenne
		if i >= w-1 {
			f(i-w+1, h)
		}
	}
}

// runs returns, in order and apart, the ranges of msg that quote one of
// qs: w bytes or more that a quote holds, ASCII case aside (a driver may
// write a scheme in lower case). Its cost is linear in msg and qs,
// whatever they repeat: each distinct window of msg is matched once.
func runs(msg string, qs []quote, w int) []run {
	if len(msg) < w {
		return nil
	}
	// The distinct windows of msg, by hash, each with where it occurs.
	type window struct {
		pos  []int
		done bool // marked already
	}
	wins := map[uint64][]*window{}
	rollHashes(msg, w, func(p int, h uint64) {
		for _, e := range wins[h] {
			if foldEqual(msg[e.pos[0]:e.pos[0]+w], msg[p:p+w]) {
				e.pos = append(e.pos, p)
				return
			}
		}
		wins[h] = append(wins[h], &window{pos: []int{p}})
	})
	field := make([]int32, len(msg)) // 1 + the quote each byte is of; 0 for none
	for qi, q := range qs {
		if len(q.s) < w {
			continue
		}
		rollHashes(q.s, w, func(off int, h uint64) {
			for _, e := range wins[h] {
				if e.done || !foldEqual(msg[e.pos[0]:e.pos[0]+w], q.s[off:off+w]) {
					continue
				}
				e.done = true
				for _, p := range e.pos {
					for k := p; k < p+w; k++ {
						if field[k] == 0 {
							field[k] = int32(qi + 1)
						}
					}
				}
			}
		})
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

// foldEqual compares a and b, of one length, ASCII case aside.
func foldEqual(a, b string) bool {
	for i := 0; i < len(a); i++ {
		if lowerByte(a[i]) != lowerByte(b[i]) {
			return false
		}
	}
	return true
}

func lowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// replace writes msg with each run r given by f(r).
func replace(msg string, rs []run, f func(run) string) string {
	if len(rs) == 0 {
		return msg
	}
	var b strings.Builder
	last := 0
	for _, r := range rs {
		b.WriteString(msg[last:r.start])
		b.WriteString(f(r))
		last = r.end
	}
	b.WriteString(msg[last:])
	return b.String()
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

// cut shortens every run of msg that quotes one of qs for more than 64
// bytes to its first 64.
func cut(msg string, qs []quote) string {
	return replace(msg, runs(msg, qs, 65), func(r run) string { return connector.Short(msg[r.start:r.end]) })
}

// Quoter returns a function for the messages about props p that hold no
// stored secret (a request's own): p's secrets are masked, and every
// quote of p of more than 64 bytes is cut to 64, whatever the message
// makes of it (in another case, escaped, in part). See Sanitizer for the
// others.
func Quoter(s *connector.Schema, p map[string]any) func(string) string {
	secrets := Values(s, p)
	scrub := Scrubber(s, p)
	qs := quotes(s, MaskProps(s, p))
	return func(msg string) string {
		return connector.Truncate(cut(scrub(scan(msg, secrets)), qs), maxMessage)
	}
}

// Withheld is what a message says in place of one that quoted part of a
// value a writer could have chosen beside a stored secret.
const Withheld = "message withheld: it quoted part of a value given beside a stored secret, where a guess of that secret could be told; give the secret itself (not a connectionSelector or a mask) to see it"

// Sanitizer returns a function for every message an answer or a status
// shows that can quote p. If p holds a secret (a stored connection's, or
// one laid under a request's props), a message never quotes the values a
// writer could have chosen beside that secret, those of props other than
// endpoints (a file, a query, a client id, a check's own table):
//
//   - a quote of one, 16 bytes of it or more, or a whole one of 4 set
//     apart from the words around it (as it is, escaped, or in another
//     case), is named instead, as <field>;
//   - if a word of 4 bytes or more that one of those values holds is
//     still quoted (a part a driver cut out and quoted, as MariaDB's
//     "near '...'"), the message is Withheld whole;
//   - then the secrets are masked, and long quotes of endpoints cut.
//
// An endpoint cannot hold a guess: a secret is bound to its endpoint, and
// a writer who changes one must give the secret again. Each step depends
// on the message and the values alone, never on the secret, so no answer
// shows where, or whether, a stored secret occurs inside a value a writer
// chose. If p holds no secret, it is Quoter. Logs, seen by operators only,
// take Scrubber.
func Sanitizer(s *connector.Schema, p map[string]any) func(string) string {
	secrets := Values(s, p)
	if len(secrets) == 0 {
		return Quoter(s, p)
	}
	scrub := Scrubber(s, p)
	var named, ends []quote
	var text strings.Builder // every named form, lower-cased, apart
	for _, q := range quotes(s, MaskProps(s, p)) {
		if q.endpoint {
			ends = append(ends, q)
			continue
		}
		named = append(named, q)
		text.WriteString(asciiLower(q.s))
		text.WriteByte(0)
	}
	values := text.String()
	return func(msg string) string {
		msg = scan(msg, secrets)
		rs := merge(append(runs(msg, named, 16), wholes(msg, named, 4, 16)...))
		if leftover(replace(msg, rs, func(run) string { return "\x00" }), values) {
			return Withheld
		}
		msg = replace(msg, rs, func(r run) string { return "<" + r.field + ">" })
		return connector.Truncate(cut(scrub(msg), ends), maxMessage)
	}
}

// wholes returns the ranges of msg where a whole quote of min to max-1
// bytes occurs apart from the words around it (no letter or digit beside
// it), ASCII case aside.
func wholes(msg string, qs []quote, min, max int) []run {
	lower := asciiLower(msg)
	var out []run
	for _, q := range qs {
		if len(q.s) < min || len(q.s) >= max {
			continue
		}
		lq := asciiLower(q.s)
		for from := 0; ; {
			i := strings.Index(lower[from:], lq)
			if i < 0 {
				break
			}
			start, end := from+i, from+i+len(lq)
			if (start == 0 || !alnum(msg[start-1])) && (end == len(msg) || !alnum(msg[end])) {
				out = append(out, run{start, end, q.field})
			}
			from = start + 1
		}
	}
	return out
}

// merge sorts rs and joins those that overlap, each keeping the field of
// the first.
func merge(rs []run) []run {
	slices.SortFunc(rs, func(a, b run) int { return a.start - b.start })
	var out []run
	for _, r := range rs {
		if n := len(out); n > 0 && r.start <= out[n-1].end {
			out[n-1].end = max(out[n-1].end, r.end)
			continue
		}
		out = append(out, r)
	}
	return out
}

// leftover reports whether a word (letters and digits, 4 bytes or more)
// of what msg quotes, between ' or " or `, is part of values: a fragment
// of a value a driver cut out and quoted, as MariaDB's "near '...'".
// Words outside quotes are the message's own ("no such file"), which
// values may hold too. Past 256 words it says yes, not to look at all of
// a long message.
func leftover(msg, values string) bool {
	if values == "" {
		return false
	}
	lower := asciiLower(msg)
	words := 0
	for i := 0; i < len(lower); i++ {
		q := lower[i]
		if q != '\'' && q != '"' && q != '`' {
			continue
		}
		end := strings.IndexByte(lower[i+1:], q)
		if end < 0 {
			end = len(lower) - i - 1 // a quote cut short: to the end
		}
		seg := lower[i+1 : i+1+end]
		for a := 0; a < len(seg); {
			if !alnum(seg[a]) {
				a++
				continue
			}
			b := a
			for b < len(seg) && alnum(seg[b]) {
				b++
			}
			if b-a >= 4 {
				if words++; words > 256 || strings.Contains(values, seg[a:b]) {
					return true
				}
			}
			a = b
		}
		i += end + 1
	}
	return false
}

func alnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c >= 0x80
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = lowerByte(c)
	}
	return string(b)
}
