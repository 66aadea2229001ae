package token

import (
	"context"
	"errors"
	"fmt"
)

// KeyRef names the key-encryption key to use: the keyring version and, for
// KMS-backed versions, the KMS key id.
type KeyRef struct {
	Version  uint32
	KMSKeyID string
}

// Purposes bound into KMS wrapping (AWS KMS encryption context) so a wrapped
// HMAC key cannot be unwrapped as a data key or the other way round.
const (
	dataKeyWrapContext = "vault-data-key"
	hmacWrapContext    = "token-hmac-key"
)

// KMS wraps and unwraps key material under a key-encryption key that never
// leaves it. purpose is bound to the ciphertext where the KMS supports it
// (AWS KMS encryption context) and must match on Unwrap.
type KMS interface {
	Wrap(ctx context.Context, ref KeyRef, key []byte, purpose string) ([]byte, error)
	Unwrap(ctx context.Context, ref KeyRef, wrapped []byte, purpose string) ([]byte, error)
}

// LocalKMS is the KMS backed by the local symmetric KEKs of v1 keyrings (AES
// key wrap, RFC 3394). Versions created since seal data keys to an X25519
// public key instead (see Vault), so that sealing needs no secret that opens.
type LocalKMS struct {
	kr *Keyring
}

// NewLocalKMS returns a KMS that wraps with the keyring's local KEKs.
func NewLocalKMS(kr *Keyring) *LocalKMS { return &LocalKMS{kr: kr} }

func (l *LocalKMS) kek(ref KeyRef) ([]byte, error) {
	kv, err := l.kr.version(ref.Version)
	if err != nil {
		return nil, err
	}
	if kv.kek == nil {
		return nil, fmt.Errorf("%w %d: it is held by KMS key %q, configure the KMS", ErrNoKEK, ref.Version, kv.kmsKeyID)
	}
	return kv.kek, nil
}

// Wrap wraps key with the local KEK of ref.Version. purpose is not bound (AES
// key wrap has no associated data); LocalKMS only ever wraps data keys.
func (l *LocalKMS) Wrap(_ context.Context, ref KeyRef, key []byte, _ string) ([]byte, error) {
	kek, err := l.kek(ref)
	if err != nil {
		return nil, err
	}
	return aesKeyWrap(kek, key)
}

// Unwrap reverses Wrap.
func (l *LocalKMS) Unwrap(_ context.Context, ref KeyRef, wrapped []byte, _ string) ([]byte, error) {
	kek, err := l.kek(ref)
	if err != nil {
		return nil, err
	}
	return aesKeyUnwrap(kek, wrapped)
}

var errNoKMSKey = errors.New("KMS key id is empty")
