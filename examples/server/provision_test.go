package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProvision: a YAML file is applied at start, one log line per entry;
// a second start with the same file changes nothing; an invalid file
// stops the server with an error naming the entry, and applies nothing.
func TestProvision(t *testing.T) {
	bin := buildServer(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "c.db")
	file := filepath.Join(dir, "connections.yaml")
	os.WriteFile(file, []byte(`
- id: bus
  typ: mqtt
  props:
    server: tcp://127.0.0.1:1
    username: edge
- id: push
  typ: httppush
  props: {addr: "127.0.0.1:0", endpoint: /in}
`), 0o600)
	p := startWith(t, bin, "-db", db, "-provision", file)
	if code, body := call(t, "GET", p.url+"/connections/bus", ""); code != 200 || body["version"].(float64) != 1 {
		t.Fatalf("bus: %d %v", code, body)
	}
	stop(p)
	for _, want := range []string{`msg="provisioned connection" connection=bus action=create version=1`, `connection=push action=create`} {
		if !strings.Contains(p.logs.String(), want) {
			t.Fatalf("log lacks %q:\n%s", want, p.logs)
		}
	}

	p = startWith(t, bin, "-db", db, "-provision", file)
	stop(p)
	if !strings.Contains(p.logs.String(), `connection=bus action=unchanged version=1`) {
		t.Fatalf("second start:\n%s", p.logs)
	}

	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`[{"id":"new","typ":"mqtt","props":{"server":"tcp://127.0.0.1:1"}},{"id":"x","typ":"mqtt","props":{"servr":"tcp://h:1"}}]`), 0o600)
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-db", db, "-provision", bad)
	done := make(chan []byte, 1)
	go func() { out, _ := cmd.CombinedOutput(); done <- out }()
	var out []byte
	select {
	case out = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the server did not stop on an invalid provisioning file")
	}
	if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), `entry 1 (id \"x\") servr: unknown property`) {
		t.Fatalf("invalid file: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	}
	p = startWith(t, bin, "-db", db)
	if code, _ := call(t, "GET", p.url+"/connections/new", ""); code != 404 {
		t.Fatalf("an invalid file applied its valid entry: %d", code)
	}
}

// stop kills p and waits until its log is read to the end.
func stop(p *proc) {
	p.cmd.Process.Kill()
	<-p.done
	p.cmd.Wait()
}

// TestProvisionSecretReferences: a provisioning file holds references, not
// passwords; the server reads them from its environment and a file, and
// connects to the real password-protected mosquitto; the password is in
// no answer and no log line.
func TestProvisionSecretReferences(t *testing.T) {
	addr := os.Getenv("CONNKIT_MQTT_AUTH_ADDR")
	user, pw := os.Getenv("CONNKIT_MQTT_USER"), os.Getenv("CONNKIT_MQTT_PASSWORD")
	if addr == "" || pw == "" {
		t.Skip("CONNKIT_MQTT_AUTH_ADDR is not set: run make test")
	}
	t.Setenv("CONNKIT_SECRET_MQTT", pw)
	dir := t.TempDir() // the server's -secret-dir
	pwFile := filepath.Join(dir, "mqtt.pw")
	os.WriteFile(pwFile, []byte(pw+"\n"), 0o600)
	file := filepath.Join(dir, "connections.yaml")
	os.WriteFile(file, []byte(`
- id: from_env
  typ: mqtt
  props: {server: "tcp://`+addr+`", username: `+user+`, password: "${env:CONNKIT_SECRET_MQTT}"}
- id: from_file
  typ: mqtt
  props: {server: "tcp://`+addr+`", username: `+user+`, password: "${file:`+pwFile+`}"}
- id: unset
  typ: mqtt
  props: {server: "tcp://`+addr+`", username: `+user+`, password: "${env:CONNKIT_SECRET_UNSET}"}
- id: own_file
  typ: mqtt
  props: {server: "tcp://`+addr+`", username: `+user+`, password: "${file:connections.yaml}"}
`), 0o600)
	bin := buildServer(t)
	p := startWith(t, bin, "-db", filepath.Join(dir, "c.db"), "-provision", file, "-secret-dir", dir, "-file-root", t.TempDir())
	// The server's own files are no secrets, in the secret directory or not.
	if _, body := call(t, "GET", p.url+"/connections/own_file", ""); body["permanent"] != true || !strings.Contains(fmt.Sprint(body["err"]), "denied") {
		t.Errorf("a reference to the provisioning file: %v", body)
	}
	for _, id := range []string{"from_env", "from_file"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body := call(t, "GET", p.url+"/connections/"+id, "")
			if code == 200 && body["status"] == "connected" {
				if props := body["props"].(map[string]any); !strings.HasPrefix(props["password"].(string), "${") {
					t.Fatalf("%s shows password %v, want the reference", id, props["password"])
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not connected: %v", id, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	code, body := call(t, "POST", p.url+"/connections/from_env/check", "")
	if code != 200 {
		t.Fatalf("check with the referenced password: %d %v", code, body)
	}
	code, body = call(t, "GET", p.url+"/connections/unset", "")
	if body["permanent"] != true || !strings.Contains(body["err"].(string), "CONNKIT_SECRET_UNSET is not set") {
		t.Fatalf("unset reference: %d %v", code, body)
	}
	stop(p)
	if strings.Contains(p.logs.String(), pw) {
		t.Fatalf("the password reached the log:\n%s", p.logs)
	}
}

// TestSecretBinding: a reference that -secret-bind holds to other
// networks never reaches the broker, from a connection or a check; an
// unbound one beside it does.
func TestSecretBinding(t *testing.T) {
	addr := os.Getenv("CONNKIT_MQTT_AUTH_ADDR")
	user, pw := os.Getenv("CONNKIT_MQTT_USER"), os.Getenv("CONNKIT_MQTT_PASSWORD")
	if addr == "" || pw == "" {
		t.Skip("CONNKIT_MQTT_AUTH_ADDR is not set: run make test")
	}
	t.Setenv("CONNKIT_SECRET_PROD_MQTT", pw)
	t.Setenv("CONNKIT_SECRET_DEV_MQTT", pw)
	dir := t.TempDir()
	p := startWith(t, buildServer(t), "-db", filepath.Join(dir, "c.db"), "-secret-bind", "env:CONNKIT_SECRET_PROD_=10.0.0.0/8")
	for id, ref := range map[string]string{"prod": "PROD", "dev": "DEV"} {
		body := fmt.Sprintf(`{"id":%q,"typ":"mqtt","props":{"server":"tcp://%s","username":%q,"password":"${env:CONNKIT_SECRET_%s_MQTT}"}}`, id, addr, user, ref)
		if code, b := call(t, "POST", p.url+"/connections", body); code != 201 {
			t.Fatalf("create %s: %d %v", id, code, b)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, dev := call(t, "GET", p.url+"/connections/dev", "")
		_, prod := call(t, "GET", p.url+"/connections/prod", "")
		if dev["status"] == "connected" && prod["status"] == "disconnected" {
			if !strings.Contains(fmt.Sprint(prod["err"]), "denied") {
				t.Errorf("prod: %v", prod["err"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev %v, prod %v", dev, prod)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, b := call(t, "POST", p.url+"/connections/prod/check", ""); code != 400 || b["reason"] != "denied" {
		t.Errorf("check of prod: %d %v", code, b)
	}
	if code, b := call(t, "POST", p.url+"/metadata/sources/connection/mqtt", fmt.Sprintf(`{"server":"tcp://%s","username":%q,"password":"${env:CONNKIT_SECRET_PROD_MQTT}"}`, addr, user)); code != 400 || b["reason"] != "denied" {
		t.Errorf("check with the bound reference: %d %v", code, b)
	}
}

// TestProvisionRefusesAliases: a YAML file whose aliases would expand to
// gigabytes is refused at once, naming the line, before any expansion;
// so is a file over 4 MiB.
func TestProvisionRefusesAliases(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("- id: a\n  typ: mqtt\n  props: {server: &s \"tcp://" + strings.Repeat("x", 60000) + "\"}\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "- id: a%d\n  typ: mqtt\n  props: {server: *s}\n", i)
	}
	file := filepath.Join(dir, "bomb.yaml")
	os.WriteFile(file, []byte(b.String()), 0o600)
	big := filepath.Join(dir, "big.yaml")
	os.WriteFile(big, []byte("# "+strings.Repeat("x", 4<<20)+"\n[]\n"), 0o600)
	bin := buildServer(t)
	for f, want := range map[string]string{file: "an alias (*s)", big: "over 4194304 bytes"} {
		cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-db", filepath.Join(dir, "c.db"), "-provision", f)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("%s: %v\n%s", filepath.Base(f), err, out)
		}
	}
}

// TestSecretFlagsRefused: a secret directory that overlaps the
// directory of SQLite connections, and a file binding not written as
// references are named, stop the server at start, saying why.
func TestSecretFlagsRefused(t *testing.T) {
	dir := t.TempDir()
	bin := buildServer(t)
	for _, args := range [][]string{
		{"-file-root", dir, "-secret-dir", dir},
		{"-file-root", dir, "-secret-dir", filepath.Join(dir, "secrets")},
		{"-file-root", filepath.Join(dir, "data"), "-secret-dir", dir},
		{"-secret-bind", "file:/abs/prod/=10.0.0.0/8"},
		{"-secret-bind", "file:./prod/=10.0.0.0/8"},
		{"-secret-bind", "file:../prod/=10.0.0.0/8"},
		{"-secret-bind", "prod=10.0.0.0/8"},
	} {
		os.MkdirAll(filepath.Join(dir, "secrets"), 0o700)
		os.MkdirAll(filepath.Join(dir, "data"), 0o700)
		cmd := exec.Command(bin, append([]string{"-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "c.db")}, args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "-secret-") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
}
