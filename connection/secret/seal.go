package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/connkit/connkit/connector"
)

// sealedPrefix marks a secret encrypted at rest.
const sealedPrefix = "connkit:sealed:v1:"

// Sealer encrypts secret props at rest with AES-GCM. A nil *Sealer
// stores secrets as given.
type Sealer struct{ aead cipher.AEAD }

// NewSealer returns a Sealer with key (16, 24 or 32 bytes: AES-128, -192
// or -256), or nil for a nil key.
func NewSealer(key []byte) (*Sealer, error) {
	if key == nil {
		return nil, nil
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("connection: SecretKey must be 16, 24 or 32 bytes (AES-128, -192 or -256), not %d", len(key))
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead}, nil
}

// Seal returns a copy of p in which every secret string is encrypted: the
// whole value of a Secret field (a URL included), and the SecretKeys
// values of a map field.
func (s *Sealer) Seal(schema *connector.Schema, p map[string]any) (map[string]any, error) {
	out := clone(p)
	if s == nil {
		return out, nil
	}
	for _, f := range schema.Fields {
		v, ok := out[f.Name]
		if !ok {
			continue
		}
		switch {
		case f.Secret:
			if str, ok := v.(string); ok && str != "" {
				sv, err := s.seal(str)
				if err != nil {
					return nil, err
				}
				out[f.Name] = sv
			}
		case len(f.SecretKeys) > 0:
			m, _ := v.(map[string]any)
			for k, kv := range m {
				if str, ok := kv.(string); ok && str != "" && f.SecretKey(k) {
					sv, err := s.seal(str)
					if err != nil {
						return nil, err
					}
					m[k] = sv
				}
			}
		}
	}
	return out, nil
}

func (s *Sealer) seal(plain string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(plain), nil)), nil
}

var errWrongKey = errors.New("cannot decrypt a secret: the SecretKey is not the one it was stored with, or the record is damaged")

// open decrypts one value; s may be nil, which fails on a sealed value.
func (s *Sealer) open(v string) (string, error) {
	if !strings.HasPrefix(v, sealedPrefix) {
		return v, nil
	}
	if s == nil {
		return "", errors.New("its secrets are encrypted at rest: give the Manager the SecretKey they were stored with")
	}
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(v, sealedPrefix))
	n := s.aead.NonceSize()
	if err != nil || len(raw) < n {
		return "", errWrongKey
	}
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], nil)
	if err != nil {
		return "", errWrongKey
	}
	return string(plain), nil
}

// Open decrypts, in place, every sealed string in p, found by its prefix,
// so that a record whose type is not registered is opened too. A nil
// Sealer fails on a sealed value: secrets are never read as blanks.
func (s *Sealer) Open(p map[string]any) error {
	for k, v := range p {
		switch x := v.(type) {
		case string:
			plain, err := s.open(x)
			if err != nil {
				return fmt.Errorf("prop %s: %w", k, err)
			}
			p[k] = plain
		case map[string]any:
			if err := s.Open(x); err != nil {
				return fmt.Errorf("prop %s.%w", k, err)
			}
		}
	}
	return nil
}
