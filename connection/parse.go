package connection

import (
	"errors"

	"github.com/connkit/connkit/connection/internal/jsonbody"
	"github.com/connkit/connkit/connector"
)

// specFields are the members of a Spec in JSON.
var specFields = []string{"id", "typ", "props"}

// ParseSpec reads one Spec from JSON, {"id","typ","props"}, strictly:
// a member that is not exactly one of these, a key given twice in any
// object, nesting deeper than 32 levels or trailing data is an
// invalid_argument *Error naming the field. Its cost is linear in data
// whatever its shape, and its errors quote at most 64 bytes of it. The
// REST API reads every body with it (ParseSpecs, ParseProps).
func ParseSpec(data []byte) (Spec, error) {
	v, err := jsonbody.Parse(data)
	if err != nil {
		return Spec{}, bodyError(err)
	}
	s, err := specOf(v)
	return s, bodyError(err)
}

// ParseSpecs reads a JSON array of Specs, as ParseSpec reads one; fields
// are named by entry, as "[2].typ".
func ParseSpecs(data []byte) ([]Spec, error) {
	v, err := jsonbody.Parse(data)
	if err != nil {
		return nil, bodyError(err)
	}
	l, ok := v.([]any)
	if !ok {
		return nil, bodyError(&jsonbody.Error{Message: "want a JSON array of connections, [] for none, got " + jsonbody.Kind(v)})
	}
	out := make([]Spec, len(l))
	for i, e := range l {
		if out[i], err = specOf(e, jsonbody.Index(i)); err != nil {
			return nil, bodyError(err)
		}
	}
	return out, nil
}

// ParseProps reads a JSON object of props (a check's body), as ParseSpec
// reads a Spec.
func ParseProps(data []byte) (map[string]any, error) {
	v, err := jsonbody.Parse(data)
	if err != nil {
		return nil, bodyError(err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, bodyError(&jsonbody.Error{Message: "want a JSON object, got " + jsonbody.Kind(v)})
	}
	return m, nil
}

func specOf(v any, at ...jsonbody.Step) (Spec, error) {
	m, err := jsonbody.Object(v, specFields, at...)
	if err != nil {
		return Spec{}, err
	}
	var s Spec
	if s.ID, err = jsonbody.String(m, "id", at...); err != nil {
		return Spec{}, err
	}
	if s.Type, err = jsonbody.String(m, "typ", at...); err != nil {
		return Spec{}, err
	}
	if s.Props, err = jsonbody.Map(m, "props", at...); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// bodyError turns a jsonbody error into an invalid_argument *Error.
func bodyError(err error) error {
	var je *jsonbody.Error
	if !errors.As(err, &je) {
		return err
	}
	e := &Error{Code: CodeInvalidArgument, Message: "invalid request body: " + je.Error()}
	if je.Field != "" {
		e.Fields = connector.FieldErrors{{Field: je.Field, Message: je.Message}}
	}
	return e
}
