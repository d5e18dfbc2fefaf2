// Package jsonbody is the one JSON decoder of connkit's inputs: request
// bodies and provisioning files. Its cost is linear in the input and
// bounded in depth, whatever the input's shape, and what it reports
// quotes at most 64 bytes of the input.
package jsonbody

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// BytesPerValue is the fewest bytes of input per value (a string, number,
// literal, array or object), on average, beyond the first MinValues: a
// value costs a few dozen bytes once parsed, so a body of many tiny
// values ("1,1,1,...") is refused rather than let cost thirty times its
// size. Connection props spend far more bytes per value than this.
const (
	BytesPerValue = 8
	MinValues     = 4096
)

// maxNumber is the longest number read, in characters.
const maxNumber = 32

// MaxDepth is how deeply arrays and objects may nest. Connection props
// need three or four levels (a map of values in a body's array); 32 is
// room to spare, and keeps what is held per level small.
const MaxDepth = 32

// Error is input that is not a JSON value as wanted. Field, if set, is
// the path of the value at fault ("props.server", "[2].id"); both Field
// and Message quote at most 64 bytes of the input.
type Error struct {
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// Parse reads data as exactly one JSON value: objects as map[string]any,
// arrays as []any, numbers as json.Number. It refuses, with an *Error, a
// syntax error, nesting deeper than MaxDepth, a key given twice in one
// object, trailing data and empty input. It reads data once, holds
// nothing per level but the path it is at, and shares the text of
// strings and numbers with one copy of data: what it allocates is a
// small multiple of len(data), whatever its shape.
func Parse(data []byte) (any, error) {
	p := &parser{s: string(data), left: max(MinValues, len(data)/BytesPerValue)}
	p.space()
	if p.i == len(p.s) {
		return nil, &Error{Message: "the body is empty; send a JSON value"}
	}
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, &Error{Message: fmt.Sprintf("data after the JSON value at byte %d; send one value", p.i)}
	}
	return v, nil
}

// Step is one level of the path: an object's key, or an array's index.
type Step struct {
	key   string
	index int
	isKey bool
}

type parser struct {
	s    string
	i    int
	path []Step
	left int // values that may still be read
}

func (p *parser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value() (any, error) {
	if p.i >= len(p.s) {
		return nil, &Error{Message: "the JSON ends too early"}
	}
	if p.left--; p.left < 0 {
		return nil, p.fail(fmt.Sprintf("more values than a body of %d bytes may hold (one per %d bytes); connection props hold few", len(p.s), BytesPerValue))
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.str()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	for _, lit := range []struct {
		text string
		v    any
	}{{"true", true}, {"false", false}, {"null", nil}} {
		if strings.HasPrefix(p.s[p.i:], lit.text) {
			p.i += len(lit.text)
			return lit.v, nil
		}
	}
	return nil, p.syntax("looking for the beginning of a value")
}

func (p *parser) object() (any, error) {
	if len(p.path) >= MaxDepth {
		return nil, p.fail(fmt.Sprintf("nested more than %d levels deep; connection props need a few", MaxDepth))
	}
	p.i++ // {
	m := map[string]any{}
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return m, nil
	}
	for {
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, p.syntax("looking for a key")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.path = append(p.path, Step{key: k, isKey: true})
		if _, dup := m[k]; dup {
			return nil, p.fail("the key is given twice; give it once")
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.syntax("after a key, looking for :")
		}
		p.i++
		p.space()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		m[k] = v
		p.path = p.path[:len(p.path)-1]
		if end, err := p.next('}', "after a member, looking for , or }"); end || err != nil {
			return m, err
		}
	}
}

func (p *parser) array() (any, error) {
	if len(p.path) >= MaxDepth {
		return nil, p.fail(fmt.Sprintf("nested more than %d levels deep; connection props need a few", MaxDepth))
	}
	p.i++ // [
	l := []any{}
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return l, nil
	}
	for n := 0; ; n++ {
		p.path = append(p.path, Step{index: n})
		p.space()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if len(l) == cap(l) {
			// Doubling: append grows a long slice by a quarter at a time,
			// which would allocate five times its final size in all.
			l = append(make([]any, 0, max(4, 2*cap(l))), l...)
		}
		l = append(l, v)
		p.path = p.path[:len(p.path)-1]
		if end, err := p.next(']', "after an item, looking for , or ]"); end || err != nil {
			return slices.Clip(l), err
		}
	}
}

// next reads what follows a member or an item: a comma (end false), or
// the closing delim (end true).
func (p *parser) next(delim byte, what string) (end bool, err error) {
	p.space()
	switch {
	case p.i >= len(p.s):
		return false, &Error{Message: "the JSON ends too early"}
	case p.s[p.i] == ',':
		p.i++
		return false, nil
	case p.s[p.i] == delim:
		p.i++
		return true, nil
	}
	return false, p.syntax(what)
}

// str reads a string; without escapes it is a slice of the input.
func (p *parser) str() (string, error) {
	start := p.i + 1
	for j := start; j < len(p.s); j++ {
		switch c := p.s[j]; {
		case c == '"':
			p.i = j + 1
			if s := p.s[start:j]; utf8.ValidString(s) {
				return s, nil
			}
			return validUTF8(p.s[start:j]), nil
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			p.i = j
			return "", p.syntax("in a string: a control character")
		}
	}
	return "", &Error{Message: "the JSON ends too early: a string is not closed"}
}

// validUTF8 replaces each byte of s that is not UTF-8 with U+FFFD, as
// encoding/json does.
func validUTF8(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// escaped reads a string that holds escapes, as encoding/json does.
func (p *parser) escaped(start int) (string, error) {
	end := start
	for ; end < len(p.s) && p.s[end] != '"'; end++ {
		switch c := p.s[end]; {
		case c == '\\':
			end++
		case c < 0x20:
			p.i = end
			return "", p.syntax("in a string: a control character")
		}
	}
	if end >= len(p.s) {
		return "", &Error{Message: "the JSON ends too early: a string is not closed"}
	}
	var out string
	if err := json.Unmarshal([]byte(p.s[start-1:end+1]), &out); err != nil {
		p.i = start
		return "", p.syntax("in a string: a bad escape")
	}
	p.i = end + 1
	return out, nil
}

func (p *parser) number() (any, error) {
	start := p.i
	j := p.i
	if p.s[j] == '-' {
		j++
	}
	digits := func() int {
		n := 0
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
			n++
		}
		return n
	}
	switch {
	case j < len(p.s) && p.s[j] == '0':
		j++
	case digits() == 0:
		p.i = j
		return nil, p.syntax("in a number")
	}
	if j < len(p.s) && p.s[j] == '.' {
		j++
		if digits() == 0 {
			p.i = j
			return nil, p.syntax("in a number, after the point")
		}
	}
	if j < len(p.s) && (p.s[j] == 'e' || p.s[j] == 'E') {
		j++
		if j < len(p.s) && (p.s[j] == '+' || p.s[j] == '-') {
			j++
		}
		if digits() == 0 {
			p.i = j
			return nil, p.syntax("in a number's exponent")
		}
	}
	p.i = j
	if j-start > maxNumber {
		// An int64 has 19 digits, a float64 17 significant ones: a longer
		// number only costs its reader.
		p.i = start
		return nil, p.fail(fmt.Sprintf("a number of %d characters; give at most %d", j-start, maxNumber))
	}
	return json.Number(p.s[start:j]), nil
}

func (p *parser) fail(msg string) error { return &Error{Field: Path(p.path...), Message: msg} }

// syntax is a syntax error at the parser's place; it quotes one
// character of the input at most.
func (p *parser) syntax(what string) error {
	if p.i >= len(p.s) {
		return &Error{Message: "the JSON ends too early"}
	}
	r, _ := utf8.DecodeRuneInString(p.s[p.i:])
	return &Error{Message: fmt.Sprintf("not valid JSON at byte %d: %q %s", p.i, r, what)}
}

// Path writes a path of keys and indexes, as "props.server" or
// "[2].id", quoting at most 64 bytes of the keys.
func Path(steps ...Step) string {
	var b strings.Builder
	for _, s := range steps {
		if s.isKey {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(Short(s.key))
		} else {
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		}
		if b.Len() > 64 {
			break
		}
	}
	return Short(b.String())
}

// Key is the path step of an object's key k, for Path.
func Key(k string) Step { return Step{key: k, isKey: true} }

// Index is the path step of an array's element i, for Path.
func Index(i int) Step { return Step{index: i} }

// Short returns s, or its first 64 bytes and an ellipsis: how any input
// is quoted.
func Short(s string) string {
	if len(s) <= 64 {
		return s
	}
	i := 64
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// Object returns v as an object whose keys are all among fields, exactly:
// a key that matches a field only without regard to case is named as
// such. at is the path of v.
func Object(v any, fields []string, at ...Step) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{Field: Path(at...), Message: "want a JSON object, got " + Kind(v)}
	}
	// In a fixed order, so that the answer is the same each time.
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if slices.Contains(fields, k) {
			continue
		}
		msg := fmt.Sprintf("unknown field %q; the fields are %s", Short(k), strings.Join(fields, ", "))
		if i := slices.IndexFunc(fields, func(f string) bool { return strings.EqualFold(f, k) }); i >= 0 {
			msg = fmt.Sprintf("unknown field %q; field names are exact: use %q", Short(k), fields[i])
		}
		return nil, &Error{Field: Path(append(slices.Clone(at), Key(k))...), Message: msg}
	}
	return m, nil
}

// String returns the member k of m as a string ("" if absent or null).
func String(m map[string]any, k string, at ...Step) (string, error) {
	switch v := m[k].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", &Error{Field: Path(append(slices.Clone(at), Key(k))...), Message: "want a string, got " + Kind(v)}
	}
}

// Map returns the member k of m as an object (nil if absent or null).
func Map(m map[string]any, k string, at ...Step) (map[string]any, error) {
	switch v := m[k].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return v, nil
	default:
		return nil, &Error{Field: Path(append(slices.Clone(at), Key(k))...), Message: "want an object, got " + Kind(v)}
	}
}

// Kind names the JSON kind of a parsed value.
func Kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a bool"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}
