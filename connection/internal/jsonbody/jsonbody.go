// Package jsonbody is the one JSON decoder of connkit's inputs: request
// bodies and provisioning files. Its cost is linear in the input and
// bounded in depth, whatever the input's shape, and what it reports
// quotes at most 64 bytes of the input.
package jsonbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

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
// object, trailing data and empty input. It keeps nothing per level but
// the path it is at.
func Parse(data []byte) (any, error) {
	p := &parser{d: json.NewDecoder(bytes.NewReader(data))}
	p.d.UseNumber()
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	if _, err := p.d.Token(); err != io.EOF {
		return nil, &Error{Message: "data after the JSON value; send one value"}
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
	d    *json.Decoder
	path []Step
}

func (p *parser) value() (any, error) {
	tok, err := p.d.Token()
	if err != nil {
		return nil, p.syntax(err)
	}
	switch tok {
	case json.Delim('{'):
		if len(p.path) >= MaxDepth {
			return nil, p.fail(fmt.Sprintf("nested more than %d levels deep; connection props need a few", MaxDepth))
		}
		m := map[string]any{}
		for p.d.More() {
			kt, err := p.d.Token()
			if err != nil {
				return nil, p.syntax(err)
			}
			k, _ := kt.(string)
			p.path = append(p.path, Step{key: k, isKey: true})
			if _, dup := m[k]; dup {
				return nil, p.fail("the key is given twice; give it once")
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			m[k] = v
			p.path = p.path[:len(p.path)-1]
		}
		if _, err := p.d.Token(); err != nil {
			return nil, p.syntax(err)
		}
		return m, nil
	case json.Delim('['):
		if len(p.path) >= MaxDepth {
			return nil, p.fail(fmt.Sprintf("nested more than %d levels deep; connection props need a few", MaxDepth))
		}
		l := []any{}
		for i := 0; p.d.More(); i++ {
			p.path = append(p.path, Step{index: i})
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			l = append(l, v)
			p.path = p.path[:len(p.path)-1]
		}
		if _, err := p.d.Token(); err != nil {
			return nil, p.syntax(err)
		}
		return l, nil
	}
	return tok, nil
}

func (p *parser) fail(msg string) error { return &Error{Field: Path(p.path...), Message: msg} }

func (p *parser) syntax(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF) && p.d.InputOffset() == 0 && len(p.path) == 0:
		return &Error{Message: "the body is empty; send a JSON value"}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Message: "the JSON ends too early"}
	case errors.As(err, &se):
		// encoding/json quotes one character of the input at most.
		return &Error{Message: fmt.Sprintf("not valid JSON at byte %d: %v", se.Offset, se)}
	}
	return &Error{Message: "not valid JSON: " + Short(err.Error())}
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
