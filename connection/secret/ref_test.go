package secret_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connkit/connkit/connection/secret"
	"github.com/connkit/connkit/connector"
)

// TestResolve: references are read under the policy; what cannot be read
// is a permanent error naming the field and what to do.
func TestResolve(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pw"), []byte("from-file\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "big"), make([]byte, 70<<10), 0o600)
	outside := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(outside, []byte("x"), 0o600)
	t.Setenv("CONNKIT_SECRET_T", "from-env")
	t.Setenv("HOME_SECRET", "not-for-you")
	pol := &connector.Policy{SecretFiles: &connector.FilePolicy{Root: dir}}

	p := map[string]any{"server": "tcp://h:1", "password": "${env:CONNKIT_SECRET_T}", "optional": map[string]any{"Password": "${file:" + filepath.Join(dir, "pw") + "}"}}
	got, refs, err := secret.Resolve(schema, p, pol)
	if err != nil || strings.Join(refs, " ") != "file:pw env:CONNKIT_SECRET_T" || got["password"] != "from-env" || got["optional"].(map[string]any)["Password"] != "from-file" {
		t.Fatalf("Resolve: %v %v %v", got, refs, err)
	}
	if p["password"] != "${env:CONNKIT_SECRET_T}" {
		t.Fatal("Resolve changed its input")
	}
	if _, refs, _ := secret.Resolve(schema, map[string]any{"password": "plain ${env:X}"}, pol); refs != nil {
		t.Fatal("a value that is not only a reference was read as one")
	}
	for name, tc := range map[string]struct{ ref, want string }{
		"unset":        {"${env:CONNKIT_SECRET_NOPE}", "CONNKIT_SECRET_NOPE is not set; set it, then reconnect"},
		"denied env":   {"${env:HOME_SECRET}", "denied by policy: HOME_SECRET; the names allowed start with CONNKIT_SECRET_"},
		"missing file": {"${file:" + filepath.Join(dir, "nope") + "}", "does not exist; create it, then reconnect"},
		"outside root": {"${file:" + outside + "}", "file denied by policy"},
		"too big":      {"${file:" + filepath.Join(dir, "big") + "}", "is over 65536 bytes"},
		"a directory":  {"${file:" + dir + "}", "is not a regular file"},
	} {
		_, _, err := secret.Resolve(schema, map[string]any{"password": tc.ref}, pol)
		var fe connector.FieldErrors
		if !errors.As(err, &fe) || fe[0].Field != "password" || !strings.Contains(err.Error(), tc.want) || !connector.IsPermanent(err) {
			t.Errorf("%s: %v, want a permanent error on password saying %q", name, err, tc.want)
		}
	}
	// Every variable, when the policy says so.
	if got, _, err := secret.Resolve(schema, map[string]any{"password": "${env:HOME_SECRET}"}, &connector.Policy{Env: &connector.EnvPolicy{Prefixes: []string{""}}}); err != nil || got["password"] != "not-for-you" {
		t.Errorf("with every variable allowed: %v %v", got, err)
	}
}

// TestRefsShown: a reference is shown as it is, and never scrubbed, as it
// is no secret; the secret beside it is masked.
func TestRefsShown(t *testing.T) {
	p := map[string]any{"server": "tcp://h:1", "password": "${env:CONNKIT_SECRET_T}", "optional": map[string]any{"Password": "Bearer x", "CaFile": "/run/ca"}}
	m := secret.MaskProps(schema, p)
	if m["password"] != "${env:CONNKIT_SECRET_T}" || m["optional"].(map[string]any)["Password"] != secret.Mask {
		t.Fatalf("masked: %v", m)
	}
	if got := secret.Scrub(schema, p, "password ${env:CONNKIT_SECRET_T} token Bearer x"); got != "password ${env:CONNKIT_SECRET_T} token "+secret.Mask {
		t.Fatalf("scrubbed: %q", got)
	}
}

// TestFileRefsBounded: a file reference needs a root, never reads a
// system file, and never blocks on a FIFO.
func TestFileRefsBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Symlink("/proc/self/environ", filepath.Join(dir, "env"))
	os.WriteFile(filepath.Join(dir, "pw"), []byte("x"), 0o600)
	rooted := &connector.Policy{SecretFiles: &connector.FilePolicy{Root: dir}}
	everywhere := &connector.Policy{SecretFiles: &connector.FilePolicy{Root: "/"}}
	for name, tc := range map[string]struct {
		pol       *connector.Policy
		path, msg string
	}{
		"no root":              {nil, filepath.Join(dir, "pw"), "file references are off"},
		"files of connections": {&connector.Policy{Files: &connector.FilePolicy{Root: dir}}, filepath.Join(dir, "pw"), "file references are off"},
		"fifo":                 {rooted, fifo, "not a regular file"},
		"proc":                 {everywhere, "/proc/self/environ", "system file"},
		"proc link":            {everywhere, filepath.Join(dir, "env"), "system file"},
	} {
		done := make(chan error, 1)
		go func() {
			_, _, err := secret.Resolve(schema, map[string]any{"password": "${file:" + tc.path + "}"}, tc.pol)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%s: %v, want %q", name, err, tc.msg)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Resolve blocked", name)
		}
	}
}

// TestFileRefsReadOnlyWhatIsSetAside: only files under the secret
// directory, named from it; never one it denies (the server's key, its
// database, its provisioning file), nor the file the process logs to,
// nor one outside, however named.
func TestFileRefsReadOnlyWhatIsSetAside(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	for _, f := range []string{"pw", "secret.key", "conns.yaml", "log"} {
		os.WriteFile(filepath.Join(dir, f), []byte("content of "+f), 0o600)
	}
	os.WriteFile(filepath.Join(other, "x"), []byte("x"), 0o600)
	os.Symlink(filepath.Join(other, "x"), filepath.Join(dir, "link"))
	os.Link(filepath.Join(dir, "secret.key"), filepath.Join(dir, "hardlink"))
	pol := &connector.Policy{SecretFiles: &connector.FilePolicy{Root: dir,
		Deny: []string{filepath.Join(dir, "secret.key"), filepath.Join(dir, "conns.yaml")}}}
	log, err := os.OpenFile(filepath.Join(dir, "log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	stderr := os.Stderr
	os.Stderr = log // as a server started with 2>log
	defer func() { os.Stderr = stderr }()
	got, refs, err := secret.Resolve(schema, map[string]any{"password": "${file:pw}"}, pol)
	if err != nil || got["password"] != "content of pw" || refs[0] != "file:pw" {
		t.Fatalf("a secret file named from its directory: %v %v %v", got, refs, err)
	}
	for _, name := range []string{"secret.key", "hardlink", "conns.yaml", "log", "link", "../" + filepath.Base(other) + "/x",
		filepath.Join(other, "x"), "/etc/hostname"} {
		got, _, err := secret.Resolve(schema, map[string]any{"password": "${file:" + name + "}"}, pol)
		if err == nil || !strings.Contains(err.Error(), "denied by policy") {
			t.Errorf("%s: %v %v, want denied", name, got, err)
		}
	}
}
