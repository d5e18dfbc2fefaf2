package connection

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// sealedPrefix marks a secret encrypted at rest.
const sealedPrefix = "connkit:sealed:v1:"

// sealer encrypts secret props at rest with AES-GCM.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
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
	return &sealer{aead}, nil
}

func (s *sealer) seal(plain string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(plain), nil)), nil
}

var errWrongKey = errors.New("cannot decrypt a secret: the SecretKey is not the one it was stored with, or the record is damaged")

// open decrypts one value; s may be nil, which fails on a sealed value.
func (s *sealer) open(v string) (string, error) {
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

// openAll decrypts every sealed string in p, found by its prefix, so that
// a record whose type is not registered is opened too.
func (s *sealer) openAll(p map[string]any) error {
	for k, v := range p {
		switch x := v.(type) {
		case string:
			plain, err := s.open(x)
			if err != nil {
				return fmt.Errorf("prop %s: %w", k, err)
			}
			p[k] = plain
		case map[string]any:
			if err := s.openAll(x); err != nil {
				return fmt.Errorf("prop %s.%w", k, err)
			}
		}
	}
	return nil
}
