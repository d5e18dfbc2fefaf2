// Package secret is connkit's handling of secret props, in one place:
// masking them in everything shown, restoring a masked secret on a write
// only while the connection's endpoint is unchanged, scrubbing them from
// messages, and sealing them at rest.
//
// Connector packages only declare, in their connector.Schema, which
// fields are secret (Secret, SecretKeys) and which say where the
// connection goes (Endpoint, EndpointKeys; a secret URL is its own
// endpoint). The Manager, the check package and the HTTP layer use this
// package; an engine needs none of it.
//
// # Binding
//
// A secret is bound to the endpoint it was stored with. A write that
// sends Mask back keeps the stored secret, and a check that names a
// stored connection uses its secrets, only while every endpoint prop is
// as stored; otherwise the secret must be given again, so that it never
// goes to a host it was not meant for.
package secret

import (
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/connkit/connkit/connector"
)

// Mask replaces a secret in everything connkit returns or logs. A props
// map that carries Mask back in place of a secret keeps the stored one.
const Mask = "******"

// MaskProps returns a copy of p with every secret replaced by Mask,
// whatever its JSON type; a URL keeps all but its password.
func MaskProps(s *connector.Schema, p map[string]any) map[string]any {
	out := clone(p)
	for _, pl := range places(s, out) {
		switch v, _ := pl.get(out); {
		case pl.url:
			out[pl.field] = maskURL(str(out[pl.field]))
		case !IsRef(v): // a reference is shown: it is no secret
			pl.set(out, Mask)
		}
	}
	return out
}

// Values returns the plain text of every secret in p, longest first, so
// that messages can be scrubbed of them.
func Values(s *connector.Schema, p map[string]any) []string {
	var out []string
	for _, pl := range places(s, p) {
		v, ok := pl.get(p)
		if !ok {
			continue
		}
		sv := fmt.Sprint(v)
		if sv == "" || sv == Mask || IsRef(sv) {
			continue
		}
		// The forms a message may quote it in: as it is, URL-escaped,
		// Go-quoted.
		q := strconv.Quote(sv)
		out = append(out, sv, url.QueryEscape(sv), url.PathEscape(sv), q[1:len(q)-1])
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return slices.Compact(out)
}

// Scrubber returns a function that replaces every secret of p in a
// message with Mask.
func Scrubber(s *connector.Schema, p map[string]any) func(string) string {
	secrets := Values(s, p)
	return func(msg string) string {
		for _, sec := range secrets {
			msg = strings.ReplaceAll(msg, sec, Mask)
		}
		return msg
	}
}

// Scrub replaces every secret of p in msg with Mask.
func Scrub(s *connector.Schema, p map[string]any, msg string) string {
	return Scrubber(s, p)(msg)
}

// Restore returns a copy of next in which every secret sent back as Mask
// (or a URL whose password is Mask) takes its stored value from prev. It
// refuses, with a connector.FieldErrors naming each secret, to restore a
// secret when an endpoint prop of next differs from prev's, and a Mask
// for which nothing is stored (prev may be nil, as on a create).
func Restore(s *connector.Schema, next, prev map[string]any) (map[string]any, error) {
	var masked []place
	for _, pl := range places(s, next) {
		if v, ok := pl.get(next); ok && v == Mask {
			masked = append(masked, pl)
		}
	}
	if len(masked) == 0 {
		return clone(next), nil
	}
	out := clone(next)
	var fe connector.FieldErrors
	changed := changedEndpoint(s, next, prev)
	for _, pl := range masked {
		pv, ok := stored(pl, prev)
		switch {
		case !ok:
			fe = append(fe, pl.fail(Mask+" stands for a stored secret, and none is stored: give "+pl.name()))
		case changed != "":
			fe = append(fe, pl.fail(changed+" changed: give "+pl.name()+" again"))
		default:
			pl.set(out, pv)
		}
	}
	if len(fe) > 0 {
		return nil, sorted(fe)
	}
	return out, nil
}

// stored returns the secret of place pl in prev, if one is stored there
// (a map's key matched without regard to case, as SecretKeys are).
func stored(pl place, prev map[string]any) (any, bool) {
	if pl.inMap {
		m, _ := prev[pl.field].(map[string]any)
		v, ok := lookup(m, pl.key)
		return v, ok && v != nil && v != Mask
	}
	v, ok := pl.get(prev)
	return v, ok && v != Mask
}

// Overlay lays props over base, the props of a stored connection with its
// secrets in clear, for a check that names the connection. A secret of
// base that props do not give (or give as Mask) is used only while every
// endpoint prop is base's; otherwise Overlay fails with a
// connector.FieldErrors naming the secret. Props outside the schema (a
// topic, a table) pass through. The key connectionSelector is dropped.
func Overlay(s *connector.Schema, base, props map[string]any) (map[string]any, error) {
	out := clone(base)
	for k, v := range clone(props) {
		if k != "connectionSelector" {
			out[k] = v
		}
	}
	if changed := changedEndpoint(s, out, base); changed != "" {
		var fe connector.FieldErrors
		for _, pl := range inherited(s, base, props) {
			fe = append(fe, pl.fail(changed+" differs from the stored connection's: give "+pl.name()+" again"))
		}
		if len(fe) > 0 {
			return nil, sorted(fe)
		}
	}
	return Restore(s, out, base)
}

// inherited lists the places of the secrets of base that props leave to
// it: not given, or given as Mask.
func inherited(s *connector.Schema, base, props map[string]any) []place {
	var out []place
	for _, pl := range places(s, base) {
		bv, ok := pl.get(base)
		if !ok || fmt.Sprint(bv) == "" {
			continue
		}
		// Given as null is no secret at all: none is inherited.
		var given any
		switch {
		case pl.inMap:
			m, _ := props[pl.field].(map[string]any)
			given, ok = lookup(m, pl.key)
		case pl.url:
			given, ok = pl.get(props)
		default:
			given, ok = props[pl.field]
		}
		if !ok || given == Mask {
			out = append(out, pl)
		}
	}
	return out
}

// changedEndpoint names the endpoint props whose value differs between
// next and prev, or returns "". A prop left out counts as its default.
func changedEndpoint(s *connector.Schema, next, prev map[string]any) string {
	var changed []string
	for _, f := range s.Fields {
		switch {
		case f.Secret && f.Kind == connector.URL:
			if withoutPassword(str(next[f.Name])) != withoutPassword(str(prev[f.Name])) {
				changed = append(changed, f.Name)
			}
		case f.Endpoint:
			if !equal(f, next[f.Name], prev[f.Name]) {
				changed = append(changed, f.Name)
			}
		case len(f.EndpointKeys) > 0:
			nm, _ := next[f.Name].(map[string]any)
			pm, _ := prev[f.Name].(map[string]any)
			for _, k := range f.EndpointKeys {
				nv, _ := lookup(nm, k)
				pv, _ := lookup(pm, k)
				if zeroish(nv) != zeroish(pv) {
					changed = append(changed, f.Name+"."+k)
				}
			}
		}
	}
	return strings.Join(changed, ", ")
}

// zeroish writes a map value for comparison: absent, empty, false and 0
// all say "not set".
func zeroish(v any) string {
	switch s := fmt.Sprint(v); s {
	case "<nil>", "", "false", "0":
		return ""
	default:
		return s
	}
}

// equal compares two values of f as the schema decodes them, defaults
// filled in: a prop left out is its default, or its kind's zero value.
func equal(f connector.Field, a, b any) bool {
	norm := func(v any) any {
		if v == nil {
			v = f.Default
		}
		if v == nil {
			return zero[f.Kind]
		}
		p, err := (&connector.Schema{Fields: []connector.Field{f}}).Decode(map[string]any{f.Name: v})
		if err != nil {
			return fmt.Sprintf("%T:%v", v, v) // undecodable: compared as given
		}
		return p[f.Name]
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

var zero = map[connector.Kind]any{connector.String: "", connector.URL: "", connector.Int: int64(0),
	connector.Float: float64(0), connector.Bool: false}

func sorted(fe connector.FieldErrors) connector.FieldErrors {
	sort.SliceStable(fe, func(i, j int) bool { return fe[i].Field < fe[j].Field })
	return fe
}

func str(v any) string { s, _ := v.(string); return s }

// lookup finds key k of m without regard to case, as SecretKeys match.
func lookup(m map[string]any, k string) (any, bool) {
	if v, ok := m[k]; ok {
		return v, true
	}
	for mk, v := range m {
		if strings.EqualFold(mk, k) {
			return v, true
		}
	}
	return nil, false
}

func urlPassword(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return "", false
	}
	return u.User.Password()
}

// withoutPassword is the URL with its password dropped: where it goes.
func withoutPassword(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

func maskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		// Not parseable: it cannot be shown safely in part.
		return Mask
	}
	if u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	// url.URL would escape the mask's stars: encode a plain placeholder.
	const placeholder = "connkitmaskedpassword"
	u.User = url.UserPassword(u.User.Username(), placeholder)
	return strings.Replace(u.String(), placeholder, Mask, 1)
}

// clone copies p deeply; never nil.
func clone(p map[string]any) map[string]any {
	out := connector.Props(p).Clone()
	if out == nil {
		out = connector.Props{}
	}
	return out
}
