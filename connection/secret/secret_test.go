package secret_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/connkit/connkit/connection/secret"
	"github.com/connkit/connkit/connector"
)

var schema = &connector.Schema{Fields: []connector.Field{
	{Name: "server", Kind: connector.String, Required: true, Endpoint: true},
	{Name: "port", Kind: connector.Int, Default: 1883, Endpoint: true},
	{Name: "keepAlive", Kind: connector.Int, Default: 60},
	{Name: "optional", Kind: connector.Map, SecretKeys: []string{"Password"}, EndpointKeys: []string{"CaFile"}},
	{Name: "password", Kind: connector.String, Secret: true},
	{Name: "url", Kind: connector.URL, Secret: true},
	{Name: "skip", Kind: connector.Bool, Endpoint: true},
}}

func TestMaskRestoreScrub(t *testing.T) {
	p := map[string]any{
		"server":   "s",
		"password": "pw1",
		"url":      "mysql://u:p%40ss@127.0.0.1:3306/db?x=1",
		"optional": map[string]any{"password": "pw2", "ClientId": "c"},
	}
	m := secret.MaskProps(schema, p)
	want := map[string]any{
		"server":   "s",
		"password": secret.Mask,
		"url":      "mysql://u:" + secret.Mask + "@127.0.0.1:3306/db?x=1",
		"optional": map[string]any{"password": secret.Mask, "ClientId": "c"},
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("MaskProps (-want +got):\n%s", diff)
	}
	if p["password"] != "pw1" || p["optional"].(map[string]any)["password"] != "pw2" {
		t.Error("MaskProps changed its input")
	}
	back, err := secret.Restore(schema, m, p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, back); diff != "" {
		t.Errorf("Restore of the masked props (-want +got):\n%s", diff)
	}
	// A new secret replaces the old one.
	m["password"] = "new"
	if back, _ := secret.Restore(schema, m, p); back["password"] != "new" {
		t.Error("Restore kept the old password over a new one")
	}
	msg := secret.Scrub(schema, p, "dial u:p@ss and p%40ss with pw1, pw2")
	if strings.Contains(msg, "pw1") || strings.Contains(msg, "pw2") || strings.Contains(msg, "p@ss") || strings.Contains(msg, "p%40ss") {
		t.Errorf("Scrub left a secret: %s", msg)
	}
	if got := secret.MaskProps(schema, map[string]any{"url": "sqlite:/tmp/x.db"})["url"]; got != "sqlite:/tmp/x.db" {
		t.Errorf("a URL without a password changed: %v", got)
	}
}

func fields(t *testing.T, err error) map[string]string {
	t.Helper()
	var fe connector.FieldErrors
	if !errors.As(err, &fe) {
		t.Fatalf("error %v, want FieldErrors", err)
	}
	out := map[string]string{}
	for _, f := range fe {
		out[f.Field] = f.Message
	}
	return out
}

// TestBoundToEndpoint: a masked secret is restored only while every
// endpoint prop is as stored.
func TestBoundToEndpoint(t *testing.T) {
	stored := map[string]any{"server": "a", "password": "pw", "url": "mysql://u:dbpw@db:3306/x",
		"optional": map[string]any{"Password": "opw", "CaFile": "/ca.pem"}}
	masked := secret.MaskProps(schema, stored)
	with := func(k string, v any) map[string]any {
		p := secret.MaskProps(schema, stored)
		p[k] = v
		return p
	}
	// Same endpoint, a default spelled out, a prop that is no endpoint:
	// the secrets stay.
	for name, next := range map[string]map[string]any{
		"same":            masked,
		"default port":    with("port", 1883),
		"other keepAlive": with("keepAlive", 5),
		"unset spelled":   with("skip", false),
		"unset map key":   with("optional", map[string]any{"Password": secret.Mask, "CaFile": "/ca.pem", "SkipCertVerify": "false"}),
	} {
		got, err := secret.Restore(schema, next, stored)
		if err != nil || got["password"] != "pw" || got["url"] != "mysql://u:dbpw@db:3306/x" {
			t.Errorf("%s: %v %v", name, got, err)
		}
	}
	for name, tc := range map[string]struct {
		next  map[string]any
		field string
		says  string
	}{
		"server":      {with("server", "evil"), "password", "server changed: give password again"},
		"port":        {with("port", 1884), "password", "port changed"},
		"skip verify": {with("skip", true), "password", "skip changed"},
		"url host":    {with("url", "mysql://u:"+secret.Mask+"@evil:3306/x"), "url", "give the password in url again"},
		"url user":    {with("url", "mysql://root:"+secret.Mask+"@db:3306/x"), "url", "url changed"},
		"url options": {with("url", "mysql://u:"+secret.Mask+"@db:3306/x?allowAllFiles=true"), "url", "url changed"},
		"CA":          {with("optional", map[string]any{"Password": secret.Mask, "CaFile": "/evil.pem"}), "optional", "Password: optional.CaFile changed"},
	} {
		_, err := secret.Restore(schema, tc.next, stored)
		got := fields(t, err)
		if !strings.Contains(got[tc.field], tc.says) {
			t.Errorf("%s: fields %v, want %s saying %q", name, got, tc.field, tc.says)
		}
	}
	// A secret given in full goes anywhere.
	next := with("server", "elsewhere")
	next["password"], next["url"] = "new", "mysql://u:new@db:3306/x"
	next["optional"] = map[string]any{"Password": "new", "CaFile": "/ca.pem"}
	if _, err := secret.Restore(schema, next, stored); err != nil {
		t.Errorf("new secrets for a new server: %v", err)
	}
	// A mask with nothing stored behind it is no password.
	got := fields(t, func() error {
		_, err := secret.Restore(schema, map[string]any{"server": "a", "password": secret.Mask}, nil)
		return err
	}())
	if !strings.Contains(got["password"], "none is stored") {
		t.Errorf("a mask on create: %v", got)
	}
}

// TestOverlay: a check naming a stored connection uses its secrets only
// at its endpoint.
func TestOverlay(t *testing.T) {
	base := map[string]any{"server": "a", "password": "pw", "optional": map[string]any{"Password": "opw"}}
	got, err := secret.Overlay(schema, base, map[string]any{"connectionSelector": "x", "topic": "t", "password": secret.Mask})
	if err != nil || got["password"] != "pw" || got["topic"] != "t" || got["connectionSelector"] != nil {
		t.Errorf("same server: %v %v", got, err)
	}
	_, err = secret.Overlay(schema, base, map[string]any{"server": "evil"})
	f := fields(t, err)
	if !strings.Contains(f["password"], "server differs") || !strings.Contains(f["optional"], "Password") {
		t.Errorf("another server, secrets left to the base: %v", f)
	}
	got, err = secret.Overlay(schema, base, map[string]any{"server": "other", "password": "mine", "optional": map[string]any{"Password": "mine2"}})
	if err != nil || got["password"] != "mine" {
		t.Errorf("another server with secrets of its own: %v %v", got, err)
	}
	if base["password"] != "pw" {
		t.Error("Overlay changed the base")
	}
}

// TestEveryKeySecret: SecretKeys "*" makes every value of a map secret:
// masked, restored, scrubbed and sealed.
func TestEveryKeySecret(t *testing.T) {
	s := &connector.Schema{Fields: []connector.Field{{Name: "requestHeader", Kind: connector.Map, SecretKeys: []string{"*"}}}}
	p := map[string]any{"requestHeader": map[string]any{"X-Api-Key": "k3y-one", "Authorization": "Bearer t0k"}}
	m := secret.MaskProps(s, p)
	if diff := cmp.Diff(map[string]any{"requestHeader": map[string]any{"X-Api-Key": secret.Mask, "Authorization": secret.Mask}}, m); diff != "" {
		t.Errorf("MaskProps (-want +got):\n%s", diff)
	}
	if back, err := secret.Restore(s, m, p); err != nil || !cmp.Equal(back, p) {
		t.Errorf("Restore: %v %v", back, err)
	}
	if msg := secret.Scrub(s, p, "sent k3y-one"); strings.Contains(msg, "k3y-one") {
		t.Errorf("Scrub: %s", msg)
	}
	sealer, _ := secret.NewSealer(make([]byte, 32))
	sealed, err := sealer.Seal(s, p)
	if err != nil || strings.Contains(fmt.Sprint(sealed), "k3y-one") || strings.Contains(fmt.Sprint(sealed), "t0k") {
		t.Errorf("Seal left a value in clear: %v %v", sealed, err)
	}
}
