package secret_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/connkit/connkit/connection/secret"
)

// TestSanitizer: with a secret among the props, a message names the
// props it quotes (whole, in part, in another case) rather than quoting
// them, then masks the secrets; the answer is the same whatever the
// secret, so no position of it inside a value shows.
func TestSanitizer(t *testing.T) {
	for _, pw := range []string{"4711", "9999"} {
		p := map[string]any{"server": "tcp://broker.example:1883", "password": pw,
			"optional": map[string]any{"CertFile": "/etc/x4711/cert.pem", "Query": "SELECT 1 WHERE x 4711", "Password": pw}}
		clean := secret.Sanitizer(schema, p)
		for msg, want := range map[string]string{
			"open /etc/x4711/cert.pem: no such file":   "open <optional.CertFile>: no such file",
			"OPEN /ETC/X4711/CERT.PEM: no such file":   "OPEN <optional.CertFile>: no such file",
			`open "/etc/x4711/cert.pem"`:               `open "<optional.CertFile>"`,
			"lookup broker.example: no such host":      "lookup broker.example: no such host",
			"auth failed for " + pw:                    "auth failed for ******",
			"dial tcp: connection refused":             "dial tcp: connection refused",
			"syntax error near 'x 4711' at line 1":     secret.Withheld,
			"syntax error near '4711' at line 1":       secret.Withheld,
			"cert /etc/x4711/cert.pem, password " + pw: "cert <optional.CertFile>, password ******",
		} {
			if got := clean(msg); got != want {
				t.Errorf("%s: %q: %q, want %q", pw, msg, got, want)
			}
		}
	}
	// A message cut to its bound never ends in the start of a secret.
	p := map[string]any{"server": "s", "password": "abcdefgh-secret"}
	long := strings.Repeat("x ", 8<<10-2) + "abcdefgh-secret"
	if got := secret.Sanitizer(schema, p)(long); strings.Contains(got, "abcd") {
		t.Errorf("a cut message ends in %q", got[len(got)-20:])
	}
}

// TestQuoter: a request's own props are quoted at most 64 bytes at a
// time, whatever the message makes of them; its secrets masked.
func TestQuoter(t *testing.T) {
	long := strings.Repeat("abcdefghij", 30)
	p := map[string]any{"server": "tcp://" + long + ":1", "password": "pw-9"}
	q := secret.Quoter(schema, p)
	got := q(`scheme "` + strings.ToUpper(long) + `" unknown; password pw-9`)
	if strings.Contains(got, long[:65]) || strings.Contains(strings.ToLower(got), long[:65]) || strings.Contains(got, "pw-9") {
		t.Errorf("%q", got)
	}
	if !strings.Contains(got, "unknown; password ******") {
		t.Errorf("%q", got)
	}
}

// repetitive are props and a message that repeat one window: the matcher
// meets each distinct window once, whatever the repetition.
func repetitive(n int) (map[string]any, string) {
	v := strings.Repeat("a", n)
	return map[string]any{"server": v + "://127.0.0.1:1", "password": "pw-1", "optional": map[string]any{"CertFile": v}},
		"scheme " + strings.ToUpper(v) + " and file " + v
}

// TestQuotingIsLinear: 60 KB of one letter, in props and message, took
// four minutes of CPU when every window met every other; it must not
// hang now (the bound is a guard, not a measure: BenchmarkSanitizer is).
func TestQuotingIsLinear(t *testing.T) {
	p, msg := repetitive(60000)
	done := make(chan string, 2)
	go func() { done <- secret.Sanitizer(schema, p)(msg) }()
	go func() { done <- secret.Quoter(schema, p)(msg) }()
	for range 2 {
		select {
		case got := <-done:
			if strings.Contains(got, strings.Repeat("a", 65)) {
				t.Errorf("a long quote left: %.80s", got)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("quoting 60 KB did not end")
		}
	}
}

func BenchmarkSanitizer(b *testing.B) {
	for _, n := range []int{1000, 60000} {
		p, msg := repetitive(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			clean := secret.Sanitizer(schema, p)
			b.ReportAllocs()
			for b.Loop() {
				clean(msg)
			}
		})
	}
}
