package secret

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
// SecretKeys value of a map field) replaced by what it names, and the
// canonical name of each reference read (env:NAME, or file:PATH with
// PATH as it lies under Policy.SecretFiles.Root), for Policy.Bound. A
// reference that cannot be read is a permanent connector.FieldErrors
// naming the field and what to do.
func Resolve(s *connector.Schema, p map[string]any, pol *connector.Policy) (map[string]any, []string, error) {
	var out map[string]any
	var fe connector.FieldErrors
	var names []string
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
		val, name, err := read(m[1], m[2], pol)
		if err != nil {
			fe = append(fe, pl.fail(connector.Short(str)+": "+err.Error()))
		}
		names = append(names, name)
		pl.set(out, val)
	}
	if len(fe) > 0 {
		return nil, names, connector.Permanent(sorted(fe))
	}
	if out == nil {
		return p, nil, nil
	}
	return out, names, nil
}

// read reads one reference under pol, and returns its canonical name.
func read(kind, name string, pol *connector.Policy) (value, canonical string, err error) {
	if kind == "env" {
		if err := pol.EnvAllowed(name); err != nil {
			return "", "", err
		}
		v, ok := os.LookupEnv(name)
		if !ok {
			return "", "", fmt.Errorf("environment variable %s is not set; set it, then reconnect the connection (or restart)", connector.Short(name))
		}
		return v, "env:" + name, nil
	}
	// Only what the operator set aside for secrets: not the working
	// directory, not the files of connections (Policy.Files).
	if pol == nil || pol.SecretFiles == nil || pol.SecretFiles.Root == "" {
		return "", "", fmt.Errorf("%w: file references are off; the operator turns them on by naming the directory secret files lie in (Policy.SecretFiles; examples/server -secret-dir)", connector.ErrFileDenied)
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(pol.SecretFiles.Root, name) // a secret file is named from its directory
	}
	path, err := pol.SecretFiles.Resolve(name)
	if err != nil {
		return "", "", err
	}
	short := connector.Short(name)
	for _, sys := range []string{"/proc/", "/sys/", "/dev/"} {
		if strings.HasPrefix(path+"/", sys) {
			return "", "", fmt.Errorf("%w: %s is a system file", connector.ErrFileDenied, short)
		}
	}
	// A FIFO would block the open itself: only a regular file is opened,
	// and without waiting.
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return "", "", fmt.Errorf("%s is not a regular file", short)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", "", fmt.Errorf("file %s does not exist; create it, then reconnect the connection (or restart)", short)
		}
		return "", "", fmt.Errorf("file %s cannot be read", short)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return "", "", fmt.Errorf("%s is not a regular file", short)
	}
	if logFile(fi) {
		// The server's log, wherever it is written: never a secret.
		return "", "", fmt.Errorf("%w: %s is not for secrets", connector.ErrFileDenied, short)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRefFile+1))
	if err != nil {
		return "", "", fmt.Errorf("file %s cannot be read", short)
	}
	if len(b) > maxRefFile {
		return "", "", fmt.Errorf("file %s is over %d bytes; a secret file holds the secret alone", short, maxRefFile)
	}
	root, _ := connector.RealPath(pol.SecretFiles.Root)
	rel, _ := filepath.Rel(root, path)
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), "file:" + filepath.ToSlash(rel), nil
}

// logFile reports whether fi is the file the process's standard output
// or error goes to.
func logFile(fi os.FileInfo) bool {
	for _, std := range []*os.File{os.Stdout, os.Stderr} {
		if si, err := std.Stat(); err == nil && si.Mode().IsRegular() && os.SameFile(fi, si) {
			return true
		}
	}
	return false
}
