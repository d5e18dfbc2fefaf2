package connector

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
)

// MaxFileSize bounds a file that a prop names: a certificate, a key, a CA.
const MaxFileSize = 1 << 20

// ReadFile reads the regular file that a prop names, of at most
// MaxFileSize bytes. A device, a pipe, a socket, a directory, a larger
// file or one that cannot be read is refused before anything is read, so
// that a prop such as /dev/zero cannot exhaust memory and one such as a
// FIFO cannot block. Every refusal has the same words: it tells no more
// about the host's files than that this one cannot be used.
func ReadFile(path string) ([]byte, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, errors.New(unusable(path))
	}
	return b, nil
}

func readFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fileErr(path, err)
	}
	if err := regular(path, fi); err != nil {
		return nil, err
	}
	// O_NONBLOCK: if the path was swapped for a FIFO since Stat, opening
	// it does not wait for a writer; the check below refuses it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fileErr(path, err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, fileErr(path, err)
	}
	if err := regular(path, fi); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fileErr(path, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s is over %d bytes; give a PEM file", path, MaxFileSize)
	}
	return b, nil
}

func regular(path string, fi fs.FileInfo) error {
	switch {
	case fi.IsDir():
		return fmt.Errorf("%s is a directory; give a PEM file", path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file (%v); give a PEM file", path, fi.Mode().Type())
	case fi.Size() > MaxFileSize:
		return fmt.Errorf("%s is %d bytes, over %d; give a PEM file", path, fi.Size(), MaxFileSize)
	}
	return nil
}

func fileErr(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s does not exist", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s cannot be read: permission denied", path)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %v", path, pe.Err)
	}
	return err
}

// TLSFiles are the PEM files of a TLS config and the props that name them.
type TLSFiles struct {
	// Cert and Key are a key pair, given together; CA holds the
	// certificates that verify the peer.
	Cert, Key, CA string
	// SkipVerify skips verifying the peer's certificate.
	SkipVerify bool
	// CertField, KeyField and CAField name the props in errors; empty,
	// eKuiper's certificationPath, privateKeyPath and rootCaPath.
	CertField, KeyField, CAField string
}

// TLSFields returns the schema fields of eKuiper's TLS props, for a
// connector's schema: insecureSkipVerify and rootCaPath (endpoint props:
// they decide whom a secret is sent to), certificationPath and
// privateKeyPath. Given names, only those.
func TLSFields(names ...string) []Field {
	all := []Field{
		{Name: "insecureSkipVerify", Kind: Bool, Endpoint: true, Doc: "skip verifying the peer's TLS certificate"},
		{Name: "certificationPath", Kind: String, Doc: "certificate file (PEM): the client's, or the server's for a listener"},
		{Name: "privateKeyPath", Kind: String, Doc: "private key file (PEM) of the certificate"},
		{Name: "rootCaPath", Kind: String, Endpoint: true, Doc: "CA certificate file (PEM) to verify the peer"},
	}
	if len(names) == 0 {
		return all
	}
	var out []Field
	for _, f := range all {
		if slices.Contains(names, f.Name) {
			out = append(out, f)
		}
	}
	return out
}

// LoadTLS builds a TLS config from the props of TLSFields:
// certificationPath and privateKeyPath (a key pair, given together),
// rootCaPath (the CAs that verify the peer) and insecureSkipVerify, with
// serverName (the peer's host, "" for a listener) to verify. It returns
// nil when none is set. A file that cannot be used is a FieldError naming
// its prop.
func LoadTLS(p Props, serverName string) (*tls.Config, FieldErrors) {
	tc, fe := TLSFiles{Cert: p.String("certificationPath"), Key: p.String("privateKeyPath"),
		CA: p.String("rootCaPath"), SkipVerify: p.Bool("insecureSkipVerify")}.Load()
	if tc != nil {
		tc.ServerName = serverName
	}
	return tc, fe
}

// Load reads the files (see ReadFile) and builds the config, or returns
// nil when nothing is set.
func (f TLSFiles) Load() (_ *tls.Config, fe FieldErrors) {
	if f.Cert == "" && f.Key == "" && f.CA == "" && !f.SkipVerify {
		return nil, nil
	}
	certField, keyField, caField := or(f.CertField, "certificationPath"), or(f.KeyField, "privateKeyPath"), or(f.CAField, "rootCaPath")
	tc := &tls.Config{InsecureSkipVerify: f.SkipVerify, MinVersion: tls.VersionTLS12}
	switch {
	case (f.Cert == "") != (f.Key == ""):
		fe = append(fe, FieldError{keyField, "give " + certField + " and " + keyField + " together"})
	case f.Cert != "":
		certPEM, err := ReadFile(f.Cert)
		if err != nil {
			fe = append(fe, FieldError{certField, err.Error()})
			break
		}
		keyPEM, err := ReadFile(f.Key)
		if err != nil {
			fe = append(fe, FieldError{keyField, err.Error()})
			break
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			fe = append(fe, FieldError{certField, PairError(f.Cert, err)})
		} else {
			tc.Certificates = []tls.Certificate{pair}
		}
	}
	defer func() {
		if len(fe) == 0 {
			fe = nil
		}
	}()
	if f.CA != "" {
		pem, err := ReadFile(f.CA)
		pool := x509.NewCertPool()
		switch {
		case err != nil:
			fe = append(fe, FieldError{caField, err.Error()})
		case !pool.AppendCertsFromPEM(pem):
			fe = append(fe, FieldError{caField, unusable(f.CA)})
		default:
			tc.RootCAs = pool
		}
	}
	return tc, fe
}

// unusable is what a refusal of a file says, whatever the cause: nothing
// more of the host's files than that this one cannot be used.
func unusable(path string) string {
	return path + " cannot be used: give a readable PEM file of at most 1 MiB"
}

// PairError says why a certificate and key did not load: that they do not
// match, or, in the words of every other file refusal, that the file
// cannot be used.
func PairError(certPath string, err error) string {
	if strings.Contains(err.Error(), "does not match") {
		return "the certificate and the private key do not make a pair"
	}
	return unusable(certPath)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
