package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// curl is one curl command of the README.
type curl struct {
	line, method, url, body string
	header                  http.Header
}

// readmeCommands returns the curl commands of the README's section
// heading, in order.
func readmeCommands(t *testing.T, heading string) []curl {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("the README has no %q", heading)
	}
	_, rest, _ = strings.Cut(rest, "```sh\n")
	block, _, _ := strings.Cut(rest, "```")
	var out []curl
	for _, cmd := range strings.Split(strings.ReplaceAll(block, "\\\n", " "), "\n") {
		words := shellWords(cmd)
		if len(words) == 0 || words[0] != "curl" {
			continue
		}
		c := curl{line: strings.TrimSpace(cmd), method: "GET", header: http.Header{}}
		for i := 1; i < len(words); i++ {
			switch w := words[i]; {
			case w == "-s":
			case strings.HasPrefix(w, "-X"):
				c.method = strings.TrimPrefix(w, "-X")
				if c.method == "" {
					i++
					c.method = words[i]
				}
			case w == "-d":
				i++
				c.body = words[i]
				if c.method == "GET" {
					c.method = "POST"
				}
			case w == "-H":
				i++
				k, v, _ := strings.Cut(words[i], ":")
				c.header.Add(k, strings.TrimSpace(v))
			case strings.HasPrefix(w, "-"):
				t.Fatalf("README: %s: flag %s is not understood by this test", c.line, w)
			default:
				c.url = w
			}
		}
		out = append(out, c)
	}
	return out
}

// shellWords splits a command line as sh would, for the quoting the
// README uses ('...' and "..."), up to a # comment.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '#' && !in:
			return words
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// TestReadmeTryIt: on a fresh working directory, the server as the
// README's first command starts it (default flags), then every command of
// "Try it", as written: each answers 2xx.
func TestReadmeTryIt(t *testing.T) {
	cmds := readmeCommands(t, "## Try it")
	if len(cmds) < 4 {
		t.Fatalf("README: %d commands in Try it", len(cmds))
	}
	dir := t.TempDir() // a fresh clone's working directory
	cmd := exec.Command(buildServer(t), "-addr", "127.0.0.1:0")
	cmd.Dir = dir
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	var host string
	select {
	case host = <-addr:
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not start serving")
	}
	for _, c := range cmds {
		url := "http://" + strings.Replace(c.url, "127.0.0.1:9081", host, 1)
		req, err := http.NewRequest(c.method, url, strings.NewReader(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.line, err)
		}
		req.Header = c.header
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.line, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode/100 != 2 {
			t.Errorf("README: %s\n answered %d %s", c.line, res.StatusCode, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "connkit.db")); err != nil {
		t.Errorf("the default database: %v", err)
	}
}

// TestEveryAnswerJSON: a path with . or .. segments, or doubled
// slashes, is answered by the API in JSON, not redirected in HTML by a
// mux in front of it; /metrics is still served.
func TestEveryAnswerJSON(t *testing.T) {
	p := start(t, buildServer(t), filepath.Join(t.TempDir(), "c.db"))
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/Q/../Q/../connections", "//connections", "/connections/./x"} {
		req, _ := http.NewRequest("GET", p.url+"/", nil)
		req.URL.Opaque = path // sent as written
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if ct := res.Header.Get("Content-Type"); res.StatusCode/100 != 4 || ct != "application/problem+json" {
			t.Errorf("%s: %d %s", path, res.StatusCode, ct)
		}
	}
	if res, err := http.Get(p.url + "/metrics"); err != nil || res.StatusCode != 200 {
		t.Errorf("/metrics: %v %v", res, err)
	} else {
		res.Body.Close()
	}
}
