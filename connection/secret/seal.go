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

// sealedMark begins every secret encrypted at rest, and sealedPrefix
// those of this version. No secret given through the API may begin so
// (Normalize), and only a secret's place is ever opened: no user value
// can be taken for a sealed one.
const (
	sealedMark   = "connkit:sealed:"
	sealedPrefix = sealedMark + "v1:"
)

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

// Seal returns a copy of p in which every secret is encrypted, found by
// its place in the schema: the whole value of a Secret field (a URL
// included), and the SecretKeys values of a map field. A secret that is
// not a string (Normalize makes every one a string) is refused, never
// stored in clear.
func (s *Sealer) Seal(schema *connector.Schema, p map[string]any) (map[string]any, error) {
	out := clone(p)
	if s == nil {
		return out, nil
	}
	for _, pl := range places(schema, out) {
		pl.url = false // sealed whole
		v, _ := pl.get(out)
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("secret %s is %s, not a string: it cannot be sealed", pl.name(), kindOf(v))
		}
		if str == "" {
			continue
		}
		sv, err := s.seal(str)
		if err != nil {
			return nil, err
		}
		pl.set(out, sv)
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

// Open decrypts, in place, every sealed secret of p, found by its place
// in the schema: a value elsewhere is never opened, whatever it looks
// like. A nil Sealer fails on a sealed value: secrets are never read as
// blanks.
func (s *Sealer) Open(schema *connector.Schema, p map[string]any) error {
	for _, pl := range places(schema, p) {
		pl.url = false // sealed whole
		v, _ := pl.get(p)
		str, ok := v.(string)
		if !ok {
			continue
		}
		plain, err := s.open(str)
		if err != nil {
			return fmt.Errorf("secret %s: %w", pl.name(), err)
		}
		pl.set(p, plain)
	}
	return nil
}
