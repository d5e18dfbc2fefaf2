package secret

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/connkit/connkit/connector"
)

// A secret prop may hold a reference instead of the secret:
// ${env:NAME} (an environment variable) or ${file:PATH} (a file's
// content, without its final line break). The reference is what is
// stored and shown: it is not itself a secret. Resolve reads it when the
// connection dials or is checked, under the Policy's Env and Files.
var refPattern = regexp.MustCompile(`^\$\{(env|file):([^{}]+)\}$`)

// IsRef reports whether v is a secret reference.
func IsRef(v any) bool {
	s, ok := v.(string)
	return ok && refPattern.MatchString(s)
}

// maxRefFile bounds what a ${file:} reference reads.
const maxRefFile = 64 << 10

// Resolve returns p with each secret reference (of a Secret field, or a
// SecretKeys value of a map field) replaced by what it names, and
// whether p held any. A reference that cannot be read is a permanent
// connector.FieldErrors naming the field and what to do.
func Resolve(s *connector.Schema, p map[string]any, pol *connector.Policy) (map[string]any, bool, error) {
	var out map[string]any
	var fe connector.FieldErrors
	for _, pl := range places(s, p) {
		if pl.url {
			continue // a URL holds no reference
		}
		v, _ := pl.get(p)
		str, _ := v.(string)
		m := refPattern.FindStringSubmatch(str)
		if m == nil {
			continue
		}
		if out == nil {
			out = clone(p)
		}
		val, err := read(m[1], m[2], pol)
		if err != nil {
			fe = append(fe, pl.fail(str+": "+err.Error()))
		}
		pl.set(out, val)
	}
	if len(fe) > 0 {
		return nil, true, connector.Permanent(sorted(fe))
	}
	if out == nil {
		return p, false, nil
	}
	return out, true, nil
}

func read(kind, name string, pol *connector.Policy) (string, error) {
	if kind == "env" {
		if err := pol.EnvAllowed(name); err != nil {
			return "", err
		}
		v, ok := os.LookupEnv(name)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set; set it, then reconnect the connection (or restart)", name)
		}
		return v, nil
	}
	// Without a root any file could be read (/proc/self/environ holds
	// every variable the env policy denies).
	if pol == nil || pol.Files == nil || pol.Files.Root == "" {
		return "", fmt.Errorf("%w: a file reference needs a directory secret files lie in (Policy.Files.Root; examples/server -file-root)", connector.ErrFileDenied)
	}
	path, err := pol.File(name)
	if err != nil {
		return "", err
	}
	for _, sys := range []string{"/proc/", "/sys/", "/dev/"} {
		if strings.HasPrefix(path+"/", sys) {
			return "", fmt.Errorf("%w: %s is a system file", connector.ErrFileDenied, name)
		}
	}
	// A FIFO would block the open itself: only a regular file is opened,
	// and without waiting.
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", name)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("file %s does not exist; create it, then reconnect the connection (or restart)", name)
		}
		return "", fmt.Errorf("file %s cannot be read: %v", name, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", name)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRefFile+1))
	if err != nil {
		return "", fmt.Errorf("file %s cannot be read: %v", name, err)
	}
	if len(b) > maxRefFile {
		return "", fmt.Errorf("file %s is over %d bytes; a secret file holds the secret alone", name, maxRefFile)
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
}
