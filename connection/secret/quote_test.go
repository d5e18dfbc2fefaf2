package secret_test

import (
	"strings"
	"testing"

	"github.com/connkit/connkit/connection/secret"
)

// TestSanitizer: with a secret among the props, a message names the
// props it quotes (whole, in part, in another case) rather than quoting
// them, then masks the secrets; the answer is the same whatever the
// secret, so no position of it inside a value shows.
func TestSanitizer(t *testing.T) {
	for _, pw := range []string{"4711", "9999"} {
		p := map[string]any{"server": "tcp://broker.example:1883", "password": pw,
			"optional": map[string]any{"CaFile": "/etc/x4711/ca.pem", "Password": pw}}
		clean := secret.Sanitizer(schema, p)
		for msg, want := range map[string]string{
			"open /etc/x4711/ca.pem: no such file":    "open <optional.CaFile>: no such file",
			"lookup BROKER.EXAMPLE: no such host":     "lookup <server>: no such host",
			"auth failed for " + pw:                   "auth failed for ******",
			"dial tcp: connection refused":            "dial tcp: connection refused",
			"ca /etc/x4711/ca.pem and password " + pw: "ca <optional.CaFile> and password ******",
		} {
			if got := clean(msg); got != want {
				t.Errorf("%s: %q: %q, want %q", pw, msg, got, want)
			}
		}
	}
	// A message cut to its bound never ends in the start of a secret.
	p := map[string]any{"server": "s", "password": "abcdefgh-secret"}
	long := strings.Repeat("x", 16<<10-4) + "abcdefgh-secret"
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
