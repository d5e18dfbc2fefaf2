package connector

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is the JSON kind of a prop.
type Kind string

// The kinds a prop can have.
const (
	String     Kind = "string"     // a JSON string
	Int        Kind = "int"        // a JSON number without a fraction
	Float      Kind = "float"      // a JSON number
	Bool       Kind = "bool"       // true or false
	StringList Kind = "stringList" // an array of strings
	Map        Kind = "map"        // an object with any values
	URL        Kind = "url"        // a string that parses as a URL; if Secret, only its password is
)

// Field describes one prop.
type Field struct {
	Name     string `json:"name"`
	Kind     Kind   `json:"kind"`
	Required bool   `json:"required,omitempty"`
	Default  any    `json:"default,omitempty"`
	// Allowed lists the only values accepted, if not empty.
	Allowed []any `json:"allowed,omitempty"`
	// Secret marks a value that is masked on output: the whole value, or
	// for a URL the password of its user info. A secret URL is also an
	// endpoint: all of it but the password.
	Secret bool `json:"secret,omitempty"`
	// SecretKeys names keys of a Map prop whose values are secret
	// (compared without regard to case); "*" makes every value secret.
	SecretKeys []string `json:"secretKeys,omitempty"`
	// Endpoint marks a prop that says where the connection goes, or how
	// its peer is trusted (a server, a port, a CA): a stored secret is
	// used only while every endpoint prop is unchanged, so that it never
	// reaches another host. EndpointKeys does so for keys of a Map prop.
	Endpoint     bool     `json:"endpoint,omitempty"`
	EndpointKeys []string `json:"endpointKeys,omitempty"`
	Doc          string   `json:"doc"`
}

// Schema is the list of props a connection type accepts.
type Schema struct {
	Fields []Field `json:"props"`
}

// Validate reports a schema that cannot work as declared: a field with no
// name or a name used twice, an unknown kind, a default or an allowed
// value of the wrong kind, a default that is not allowed, a required
// field with a default, a secret that is not a string or URL, or secret
// or endpoint keys on a field that is not a map. The registry panics on
// it at Register, as database/sql does on a programmer's error.
func (s *Schema) Validate() error {
	seen := map[string]bool{}
	var errs []string
	for i, f := range s.Fields {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Sprintf("field %d %q: ", i, f.Name)+fmt.Sprintf(format, args...))
		}
		switch {
		case f.Name == "":
			bad("no name")
		case seen[f.Name]:
			bad("the name is used twice")
		}
		seen[f.Name] = true
		if !slices.Contains([]Kind{String, Int, Float, Bool, StringList, Map, URL}, f.Kind) {
			bad("unknown kind %q", f.Kind)
			continue
		}
		for _, a := range f.Allowed {
			if _, err := f.normalize(a); err != nil {
				bad("allowed value %v: %v", a, err)
			}
		}
		if f.Default != nil {
			nv, err := f.normalize(f.Default)
			switch {
			case err != nil:
				bad("default %v: %v", f.Default, err)
			case len(f.Allowed) > 0 && !slices.ContainsFunc(f.Allowed, func(a any) bool { return fmt.Sprint(a) == fmt.Sprint(nv) }):
				bad("default %v is not one of the allowed values", f.Default)
			case f.Required:
				bad("required, yet it has a default")
			}
		}
		if f.Secret && f.Kind != String && f.Kind != URL {
			bad("a secret must be a string or a URL, not %s", f.Kind)
		}
		if f.Secret && f.Endpoint && f.Kind != URL {
			// Its masked value always differs: the mask could never be kept.
			bad("a secret string cannot be an endpoint (a secret URL is one by itself)")
		}
		if (len(f.SecretKeys) > 0 || len(f.EndpointKeys) > 0) && f.Kind != Map {
			bad("secret or endpoint keys need a map, not %s", f.Kind)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid schema: %s", strings.Join(errs, "; "))
	}
	return nil
}

// SecretKey reports whether the value of key k of the Map prop f is
// secret.
func (f Field) SecretKey(k string) bool {
	return slices.ContainsFunc(f.SecretKeys, func(s string) bool { return s == "*" || strings.EqualFold(s, k) })
}

// Field returns the field called name.
func (s *Schema) Field(name string) (Field, bool) {
	for _, f := range s.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// FieldError says what is wrong with one prop.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// FieldErrors lists every invalid prop of a props map, sorted by field.
type FieldErrors []FieldError

func (es FieldErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return "invalid props: " + strings.Join(parts, "; ")
}

// Decode checks raw strictly against the schema and returns the props with
// defaults filled in. Numbers may be any Go number or a json.Number. Every
// problem is reported, as a FieldErrors: an unknown prop, a wrong kind, a
// missing required prop, a value not allowed. raw is not modified.
func (s *Schema) Decode(raw map[string]any) (Props, error) {
	var errs FieldErrors
	out := make(Props, len(s.Fields))
	unknown := 0
	for name := range raw {
		if _, ok := s.Field(name); !ok {
			unknown++
			if unknown <= MaxFieldErrors {
				errs = append(errs, FieldError{Short(name), "unknown property; the known ones are " + strings.Join(s.names(), ", ")})
			}
		}
	}
	if unknown > MaxFieldErrors {
		errs = append(errs, FieldError{"props", fmt.Sprintf("%d more unknown properties", unknown-MaxFieldErrors)})
	}
	for _, f := range s.Fields {
		v, ok := raw[f.Name]
		if !ok || v == nil {
			if f.Required {
				errs = append(errs, FieldError{f.Name, "required: give " + f.Kind.article()})
			} else if f.Default != nil {
				// Of the right kind: Validate checked it at Register.
				out[f.Name], _ = f.normalize(f.Default)
			}
			continue
		}
		nv, err := f.normalize(v)
		if err != nil {
			errs = append(errs, FieldError{f.Name, err.Error()})
			continue
		}
		if len(f.Allowed) > 0 && !slices.ContainsFunc(f.Allowed, func(a any) bool { return fmt.Sprint(a) == fmt.Sprint(nv) }) {
			errs = append(errs, FieldError{f.Name, fmt.Sprintf("%s is not allowed; use one of %s", Short(fmt.Sprint(nv)), f.allowedList())})
			continue
		}
		out[f.Name] = nv
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
		return nil, errs
	}
	return out, nil
}

// UnmaskableURL says why a URL holds a password that could not be
// masked, or returns "": user info in the opaque form (mysql:user:pass@host,
// where url.URL sees no user), a ':' inside the user name (%3A: a driver
// would split it into a password), or a user:pass@ in a path, where the
// parser stops short of the user info (mysql:/u:pass@host).
func UnmaskableURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	if u.User != nil && strings.Contains(u.User.Username(), ":") {
		return "the user name holds a ':' (%3A); write user:password, so that the password can be masked"
	}
	if before, _, ok := strings.Cut(u.Opaque+u.Path, "@"); u.User == nil && ok && strings.Contains(before, ":") {
		return "write it as " + u.Scheme + "://user:password@host/..., so that the password can be masked"
	}
	return ""
}

// MaxFieldErrors bounds the errors of one kind that Decode reports, so
// that a hostile props map cannot make an answer grow with it.
const MaxFieldErrors = 20

// Short returns s, or its first 64 bytes and an ellipsis: for quoting what
// a user gave in a message without echoing all of it.
func Short(s string) string { return Truncate(s, 64) }

// Truncate returns s, or its first n bytes (cut at a character's start)
// and an ellipsis: for bounding a message, such as a peer's error, that
// may quote what a peer sent.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// article returns the kind with its indefinite article.
func (k Kind) article() string {
	if k == Int {
		return "an int"
	}
	return "a " + string(k)
}

func (s *Schema) names() []string {
	n := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		n[i] = f.Name
	}
	return n
}

func (f Field) allowedList() string {
	parts := make([]string, len(f.Allowed))
	for i, a := range f.Allowed {
		parts[i] = fmt.Sprint(a)
	}
	return strings.Join(parts, ", ")
}

// normalize converts v to the Go type of the field's kind: string, int64,
// float64, bool, []string or map[string]any.
func (f Field) normalize(v any) (any, error) {
	wrong := fmt.Errorf("want %s, got %s", f.Kind.article(), jsonKind(v))
	switch f.Kind {
	case String, URL:
		s, ok := v.(string)
		if !ok {
			return nil, wrong
		}
		if f.Kind == URL {
			if _, err := url.Parse(s); err != nil {
				return nil, fmt.Errorf("not a valid URL: %s", Short(stripURL(err).Error()))
			}
			if msg := UnmaskableURL(s); f.Secret && msg != "" {
				return nil, errors.New(msg)
			}
		}
		return s, nil
	case Bool:
		b, ok := v.(bool)
		if !ok {
			return nil, wrong
		}
		return b, nil
	case Int:
		x, ok := number(v)
		if !ok {
			return nil, wrong
		}
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return nil, fmt.Errorf("want a whole number, got %v", x)
		}
		return int64(x), nil
	case Float:
		x, ok := number(v)
		if !ok {
			return nil, wrong
		}
		return x, nil
	case StringList:
		switch l := v.(type) {
		case []string:
			return slices.Clone(l), nil
		case []any:
			out := make([]string, len(l))
			for i, e := range l {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("item %d: want a string, got %s", i, jsonKind(e))
				}
				out[i] = s
			}
			return out, nil
		}
		return nil, wrong
	case Map:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, wrong
		}
		return cloneMap(m), nil
	}
	return nil, fmt.Errorf("field kind %q is not supported", f.Kind)
}

// stripURL drops the input from a url.Parse error: it may hold a password.
func stripURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		return f, err == nil
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	}
	return 0, false
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a bool"
	case []any, []string:
		return "an array"
	case map[string]any:
		return "an object"
	case nil:
		return "null"
	}
	if _, ok := number(v); ok {
		return "a number"
	}
	return fmt.Sprintf("a %T", v)
}

// cloneMap copies m deeply, so that no caller shares a nested map or slice.
func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneValue(e)
		}
		return out
	case []string:
		return slices.Clone(x)
	}
	return v
}

// Clone returns a deep copy of p.
func (p Props) Clone() Props { return cloneMap(p) }

// DecodeCheck decodes the flat props of a check: the connection's by s
// and the check's own (a topic, a table) by own (nil: none), each map
// ignoring the other's keys. The errors of both come as one FieldErrors.
func (s *Schema) DecodeCheck(raw map[string]any, own *Schema) (conn, side Props, err error) {
	var fe FieldErrors
	conn, err = s.Decode(s.Pick(raw))
	if err != nil {
		fe = append(fe, err.(FieldErrors)...)
	}
	if own != nil {
		side, err = own.Decode(own.Pick(raw))
		if err != nil {
			fe = append(fe, err.(FieldErrors)...)
		}
	}
	if len(fe) > 0 {
		sort.SliceStable(fe, func(i, j int) bool { return fe[i].Field < fe[j].Field })
		return nil, nil, fe
	}
	return conn, side, nil
}

// DecodeGiven checks the props raw gives, and only those, as Decode
// would: none is required. A request whose props are laid over stored
// ones (a check naming a connection, an update that keeps a secret by its
// mask) is checked so first, so that what its errors quote is the
// request's alone, never bent by the stored secrets.
func (s *Schema) DecodeGiven(raw map[string]any) error {
	given := &Schema{}
	for _, f := range s.Fields {
		if _, ok := raw[f.Name]; ok {
			f.Required = false
			given.Fields = append(given.Fields, f)
		}
	}
	_, err := given.Decode(given.Pick(raw))
	return err
}

// Pick returns the props of raw that the schema knows, leaving out the
// others: a check's body holds the connection's props together with the
// source's or sink's own.
func (s *Schema) Pick(raw map[string]any) map[string]any {
	out := make(map[string]any, len(s.Fields))
	for _, f := range s.Fields {
		if v, ok := raw[f.Name]; ok {
			out[f.Name] = cloneValue(v)
		}
	}
	return out
}
