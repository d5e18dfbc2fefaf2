package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildServer compiles this command, as a user's go build would.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "server")
	args := []string{"build", "-o", bin}
	if buildTags != "" {
		args = append(args, "-tags", buildTags)
	}
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type proc struct {
	cmd  *exec.Cmd
	url  string
	logs *strings.Builder
	done chan struct{}
}

var servingRE = regexp.MustCompile(`addr=http://(127\.0\.0\.1:\d+)`)

// start runs the server on a free port and waits until it serves.
func start(t *testing.T, bin, db string) *proc {
	t.Helper()
	return startWith(t, bin, "-db", db)
}

// startWith runs the server with args on a free port and waits until it
// serves.
func startWith(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	// Test data lives in temp dirs: the SQLite connections' root.
	cmd := exec.Command(bin, append([]string{"-addr", "127.0.0.1:0", "-file-root", os.TempDir()}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: &strings.Builder{}, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.logs.WriteString(line + "\n")
			if m := servingRE.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-p.done:
		t.Fatalf("server exited before serving")
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not start serving")
	}
	return p
}

func call(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var v map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object", method, url, b)
		}
	}
	return res.StatusCode, v
}

// TestServerSurvivesSIGKILL creates and updates a connection over HTTP,
// kills the server with SIGKILL, and reads the connection back from a new
// server on the same database.
func TestServerSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server binary")
	}
	bin := buildServer(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "state", "connkit.db")
	data := "sqlite:" + filepath.Join(dir, "data.db")

	p := start(t, bin, db)
	res, err := http.Get(p.url + "/metadata/connections")
	if err != nil {
		t.Fatal(err)
	}
	var types []struct {
		Type string `json:"type"`
	}
	json.NewDecoder(res.Body).Decode(&types)
	res.Body.Close()
	var names []string
	for _, ty := range types {
		names = append(names, ty.Type)
	}
	if got := strings.Join(names, ","); got != "edgex,httppush,mqtt,nng,sql,websocket" {
		t.Errorf("the server serves types %s, want all six", got)
	}
	// The server's own database is never a connection's.
	if code, body := call(t, "POST", p.url+"/connections", `{"id":"own","typ":"sql","props":{"url":"sqlite:`+db+`"}}`); code != 400 {
		t.Errorf("a connection on the server's own database: %d %v", code, body)
	}
	code, body := call(t, "POST", p.url+"/connections", `{"id":"Sales_DB","typ":"sql","props":{"url":"`+data+`"}}`)
	if code != 201 {
		t.Fatalf("create: %d %v", code, body)
	}
	code, body = call(t, "PUT", p.url+"/connections/Sales_DB", `{"typ":"sql","props":{"url":"`+data+`","maxIdleConns":3}}`)
	if code != 200 || body["version"] != float64(2) {
		t.Fatalf("update: %d %v", code, body)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()

	p = start(t, bin, db)
	code, body = call(t, "GET", p.url+"/connections/Sales_DB", "")
	if code != 200 || body["version"] != float64(2) || body["typ"] != "sql" {
		t.Fatalf("after SIGKILL and restart: %d %v", code, body)
	}
	if props := body["props"].(map[string]any); props["maxIdleConns"] != float64(3) || props["url"] != data {
		t.Errorf("props after restart: %v", props)
	}
	deadline := time.Now().Add(10 * time.Second)
	for body["status"] != "connected" {
		if time.Now().After(deadline) {
			t.Fatalf("reloaded connection never connected: %v", body)
		}
		time.Sleep(10 * time.Millisecond)
		_, body = call(t, "GET", p.url+"/connections/Sales_DB", "")
	}

	// SIGTERM: a clean exit, status 0.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("server did not stop on SIGTERM")
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs)
	}
	if !strings.Contains(p.logs.String(), "shutting down") {
		t.Errorf("no shutdown line in the log:\n%s", p.logs)
	}
}

func TestServerRefusesBadDB(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server binary")
	}
	bin := buildServer(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-db", dir) // a directory
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("server started on a directory as database:\n%s", out)
	}
	if !strings.Contains(string(out), "sqlite store") {
		t.Errorf("error does not say what failed:\n%s", out)
	}
	_ = os.Remove(dir)
}
