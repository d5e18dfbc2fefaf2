package edgex

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strconv"

	"github.com/connkit/connkit/connector"
)

// go-mod-messaging builds a TLS config from CertFile, KeyFile and CaFile
// only for these protocols; paho speaks TLS on a few more, with its
// default config.
var (
	libraryTLS = []string{"tcps", "ssl", "tls"}
	pahoTLS    = []string{"ssl", "tls", "mqtts", "mqtt+ssl", "tcps", "wss"}
)

// tlsFiles is the PEM of the files that optional names, read once, so
// that a check and the client use the same bytes (a NATS client takes them
// as CertPEMBlock, KeyPEMBlock and CaPEMBlock) and a hostile path is
// refused before anything dials.
type tlsFiles struct {
	cert, key, ca []byte
	skip          bool
}

// loadTLS reads the files of opt and checks them as the library will use
// them: a key pair, and the first certificate of the CA file.
func loadTLS(opt map[string]string) (tlsFiles, connector.FieldErrors) {
	var f tlsFiles
	var fe connector.FieldErrors
	bad := func(key, msg string) {
		fe = append(fe, connector.FieldError{Field: "optional", Message: key + ": " + msg})
	}
	f.skip, _ = strconv.ParseBool(opt["SkipCertVerify"])
	read := func(key string) []byte {
		path := opt[key]
		if path == "" {
			return nil
		}
		b, err := connector.ReadFile(path)
		if err != nil {
			bad(key, err.Error())
		}
		return b
	}
	f.cert, f.key, f.ca = read("CertFile"), read("KeyFile"), read("CaFile")
	switch {
	case (opt["CertFile"] == "") != (opt["KeyFile"] == ""):
		bad("KeyFile", "give CertFile and KeyFile together")
	case f.cert != nil && f.key != nil:
		if _, err := tls.X509KeyPair(f.cert, f.key); err != nil {
			bad("CertFile", connector.PairError(opt["CertFile"], err))
		}
	}
	if f.ca != nil {
		if _, err := firstCert(f.ca); err != nil {
			bad("CaFile", opt["CaFile"]+" cannot be used: give a readable PEM file of at most 1 MiB")
		}
	}
	return f, fe
}

func (f tlsFiles) any() bool { return f.cert != nil || f.ca != nil }

// firstCert parses the first PEM block, as go-mod-messaging does.
func firstCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errNoPEM
	}
	return x509.ParseCertificate(blk.Bytes)
}

type pemError string

func (e pemError) Error() string { return string(e) }

const errNoPEM = pemError("no PEM certificate in the file")

// optional returns the library's options with the files given as their
// PEM.
func (f tlsFiles) optional(opt map[string]string) {
	for _, k := range []string{"CertFile", "KeyFile", "CaFile"} {
		delete(opt, k)
	}
	if f.cert != nil {
		opt["CertPEMBlock"], opt["KeyPEMBlock"] = string(f.cert), string(f.key)
	}
	if f.ca != nil {
		opt["CaPEMBlock"] = string(f.ca)
	}
}

// config is the TLS config of protocol against host, as go-mod-messaging
// would give paho, or nil when it speaks plain MQTT.
func (f tlsFiles) config(protocol, host string) *tls.Config {
	if !slices.Contains(pahoTLS, protocol) {
		return nil
	}
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if !slices.Contains(libraryTLS, protocol) || !f.any() {
		return tc // paho's default: verified against the system's roots
	}
	tc.InsecureSkipVerify = f.skip
	if f.cert != nil {
		pair, _ := tls.X509KeyPair(f.cert, f.key) // checked by loadTLS
		tc.Certificates = []tls.Certificate{pair}
	}
	if f.ca != nil {
		ca, _ := firstCert(f.ca)
		tc.RootCAs = x509.NewCertPool()
		tc.RootCAs.AddCert(ca)
	}
	return tc
}
