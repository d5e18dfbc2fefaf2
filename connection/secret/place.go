package secret

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/connkit/connkit/connector"
)

// place is where a secret lies in props, by the schema alone: a Secret
// field (of a URL, only its password), or a key of a map field that
// SecretKeys names. Every function of this package finds secrets through
// places, so that none can miss one that another would see, whatever
// its JSON type.
type place struct {
	field string // the prop
	key   string // the map's key, if inMap
	inMap bool   // the field is a map, the secret one of its values
	url   bool   // only the password of the URL is secret
}

// name is how a message names the secret.
func (pl place) name() string {
	switch {
	case pl.inMap && pl.key == "":
		return "the empty key of " + pl.field
	case pl.inMap:
		return pl.key
	case pl.url:
		return "the password in " + pl.field
	}
	return pl.field
}

// fail is a FieldError about the secret.
func (pl place) fail(msg string) connector.FieldError {
	if pl.inMap {
		msg = pl.key + ": " + msg
	}
	return connector.FieldError{Field: pl.field, Message: msg}
}

// get returns the secret's value in p: the whole value, or a URL's
// password.
func (pl place) get(p map[string]any) (any, bool) {
	v, ok := p[pl.field]
	if !ok || v == nil {
		return nil, false
	}
	switch {
	case pl.inMap:
		m, _ := v.(map[string]any)
		return m[pl.key], m != nil && m[pl.key] != nil
	case pl.url:
		pw, ok := urlPassword(str(v))
		return pw, ok
	}
	return v, true
}

// set puts v in the secret's place in p, which it modifies.
func (pl place) set(p map[string]any, v any) {
	switch {
	case pl.inMap:
		p[pl.field].(map[string]any)[pl.key] = v
	case pl.url:
		u, err := url.Parse(str(p[pl.field]))
		if err != nil || u.User == nil {
			return
		}
		u.User = url.UserPassword(u.User.Username(), fmt.Sprint(v))
		p[pl.field] = u.String()
	default:
		p[pl.field] = v
	}
}

// places lists the places of secrets that p holds under s, sorted.
func places(s *connector.Schema, p map[string]any) []place {
	var out []place
	for _, f := range s.Fields {
		v, ok := p[f.Name]
		if !ok || v == nil {
			continue
		}
		switch {
		case f.Secret:
			out = append(out, place{field: f.Name, url: f.Kind == connector.URL})
		case len(f.SecretKeys) > 0:
			m, _ := v.(map[string]any)
			keys := make([]string, 0, len(m))
			for k := range m {
				if f.SecretKey(k) {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			for _, k := range keys {
				out = append(out, place{field: f.Name, key: k, inMap: true})
			}
		}
	}
	return out
}

// Strip returns a copy of p without its secrets: what a record whose
// secrets cannot be read shows, and keeps for an update to complete.
func Strip(s *connector.Schema, p map[string]any) map[string]any {
	out := clone(p)
	for _, pl := range places(s, out) {
		if pl.inMap {
			delete(out[pl.field].(map[string]any), pl.key)
		} else {
			delete(out, pl.field)
		}
	}
	return out
}

// Normalize returns p, or a copy of it, in which every secret is a string: a
// number or a bool in a secret's place (as unquoted YAML gives it) is
// written as its JSON text, so that masking, sealing, binding and
// scrubbing treat it as they treat a string. A secret that is an object
// or an array, or a string that looks like a secret sealed at rest, is
// refused with a connector.FieldErrors naming it. The Manager and the
// checks normalize every props map before anything else reads it.
func Normalize(s *connector.Schema, p map[string]any) (map[string]any, error) {
	if plain(s, p) {
		return p, nil // the common case: nothing to change, nothing copied
	}
	out := clone(p)
	var fe connector.FieldErrors
	for _, pl := range places(s, out) {
		if pl.url {
			// A string by its kind (the schema checks it), sealed whole.
			if strings.HasPrefix(str(out[pl.field]), sealedMark) {
				fe = append(fe, connector.FieldError{Field: pl.field, Message: "starts with " + sealedMark + ", which marks a secret encrypted at rest; give the URL itself"})
			}
			continue
		}
		v, _ := pl.get(out)
		switch x := v.(type) {
		case string:
			if strings.HasPrefix(x, sealedMark) {
				fe = append(fe, pl.fail("starts with "+sealedMark+", which marks a secret encrypted at rest; give the secret itself"))
			}
		case json.Number:
			pl.set(out, string(x))
		case float64:
			pl.set(out, strconv.FormatFloat(x, 'f', -1, 64))
		case float32:
			pl.set(out, strconv.FormatFloat(float64(x), 'f', -1, 32))
		case int:
			pl.set(out, strconv.Itoa(x))
		case int64:
			pl.set(out, strconv.FormatInt(x, 10))
		case bool:
			pl.set(out, strconv.FormatBool(x))
		default:
			fe = append(fe, pl.fail("a secret is a string (or a number); give "+pl.name()+" as one, not "+kindOf(v)))
		}
	}
	if len(fe) > 0 {
		return nil, sorted(fe)
	}
	return out, nil
}

// plain reports whether every secret of p is already a string that
// Normalize keeps as it is.
func plain(s *connector.Schema, p map[string]any) bool {
	for _, pl := range places(s, p) {
		if pl.url {
			if strings.HasPrefix(str(p[pl.field]), sealedMark) {
				return false
			}
			continue
		}
		v, _ := pl.get(p)
		if str, ok := v.(string); !ok || strings.HasPrefix(str, sealedMark) {
			return false
		}
	}
	return true
}

func kindOf(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any, []string:
		return "an array"
	}
	return fmt.Sprintf("a %T", v)
}
