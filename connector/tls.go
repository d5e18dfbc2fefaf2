package connector

import (
	"crypto/tls"
	"crypto/x509"
	"os"
)

// LoadTLS builds a TLS config from eKuiper's TLS props: certificationPath
// and privateKeyPath (a key pair, given together), rootCaPath (the CAs
// that verify the peer) and insecureSkipVerify. It returns nil when none
// is set. A file that cannot be used is a FieldError naming its prop.
func LoadTLS(p Props) (*tls.Config, FieldErrors) {
	cert, key, ca := p.String("certificationPath"), p.String("privateKeyPath"), p.String("rootCaPath")
	if cert == "" && key == "" && ca == "" && !p.Bool("insecureSkipVerify") {
		return nil, nil
	}
	var fe FieldErrors
	tc := &tls.Config{InsecureSkipVerify: p.Bool("insecureSkipVerify"), MinVersion: tls.VersionTLS12}
	switch {
	case (cert == "") != (key == ""):
		fe = append(fe, FieldError{"privateKeyPath", "give certificationPath and privateKeyPath together"})
	case cert != "":
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			fe = append(fe, FieldError{"certificationPath", "cannot load the certificate and key: " + err.Error()})
		} else {
			tc.Certificates = []tls.Certificate{pair}
		}
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		pool := x509.NewCertPool()
		switch {
		case err != nil:
			fe = append(fe, FieldError{"rootCaPath", err.Error()})
		case !pool.AppendCertsFromPEM(pem):
			fe = append(fe, FieldError{"rootCaPath", "no PEM certificate in " + ca})
		default:
			tc.RootCAs = pool
		}
	}
	return tc, fe
}
