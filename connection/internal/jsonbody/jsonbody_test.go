package jsonbody_test

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/connkit/connkit/connection/internal/jsonbody"
)

// std parses data as encoding/json does, with numbers as json.Number.
func std(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, &jsonbody.Error{Message: "trailing"}
	}
	return v, nil
}

var corpus = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.5e-3`, `-12E+4`, `"x"`, ` {"a" : [1, "b", null, true, {"c": {}}]} `,
	`"\u00e9\ud83d\ude00\n\t\"\\\/"`, `"caf\u00e9"`, "\"\xff\"", `{"a":1,"b":2}`, `[1,2,3,]`, `{"a":1,}`, `{"a"}`, `{"a":}`,
	`[`, `{`, `"abc`, `01`, `1.`, `.5`, `1e`, `-`, `tru`, `nul`, `[1 2]`, `{"a":1 "b":2}`, `"a\x"`, `"\u12"`, "\"a\x01\"",
	`{"a":1}x`, `{"a":1} {"b":2}`, ``, `   `, `{1:2}`, `["\ud800"]`, `1 2`,
}

// TestLikeEncodingJSON: what Parse accepts encoding/json accepts, with
// the same value, and what it refuses encoding/json refuses (keys given
// twice and depth aside, which only Parse refuses).
func TestLikeEncodingJSON(t *testing.T) {
	for _, in := range corpus {
		check(t, []byte(in))
	}
}

func check(t *testing.T, data []byte) {
	t.Helper()
	got, err := jsonbody.Parse(data)
	want, werr := std(data)
	if err != nil {
		var je *jsonbody.Error
		if !errTypeOK(err, &je) {
			t.Fatalf("%q: error of type %T", data, err)
		}
		if werr == nil && !strings.Contains(je.Message, "twice") && !strings.Contains(je.Message, "nested") && !strings.Contains(je.Message, "more values") && !strings.Contains(je.Message, "a number of") {
			t.Fatalf("%q: refused (%v), encoding/json takes it", data, err)
		}
		if len(je.Message) > 200 || len(je.Field) > 80 {
			t.Fatalf("%q: a long error: %v", data, err)
		}
		return
	}
	if werr != nil {
		t.Fatalf("%q: taken as %v, encoding/json refuses it: %v", data, got, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: %#v, encoding/json %#v", data, got, want)
	}
}

func errTypeOK(err error, je **jsonbody.Error) bool {
	e, ok := err.(*jsonbody.Error)
	*je = e
	return ok
}

// TestBounds: keys twice, depth and the value budget are refused, each
// naming where.
func TestBounds(t *testing.T) {
	for in, want := range map[string]string{
		`{"props":{"a":1,"a":2}}`:                         "props.a: the key is given twice",
		strings.Repeat("[", 33) + strings.Repeat("]", 33): "nested more than 32 levels",
		"[" + strings.Repeat("1,", 10000) + "1]":          "more values than a body",
	} {
		_, err := jsonbody.Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40s: %v, want %q", in, err, want)
		}
	}
	if _, err := jsonbody.Parse([]byte(strings.Repeat("[", 32) + strings.Repeat("]", 32))); err != nil {
		t.Errorf("32 levels: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, in := range corpus {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, data []byte) { check(t, data) })
}
