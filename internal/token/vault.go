package token

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Sealed is a PAN under envelope encryption: AES-256-GCM with a data key that
// is stored only wrapped by the key version's KEK.
type Sealed struct {
	KeyVersion uint32 // keyring version whose KEK wrapped the data key
	WrappedKey []byte // the data key, wrapped (AES-KW locally, KMS ciphertext otherwise)
	Nonce      []byte // 12-byte AES-GCM nonce, random
	Ciphertext []byte // AES-256-GCM ciphertext and tag of the PAN
}

// ErrDecrypt is returned when a vault record does not decrypt: it was altered,
// it belongs to another token, or the wrong keyring is in use.
var ErrDecrypt = errors.New("vault record does not decrypt under this keyring (altered, wrong token, or wrong keyring)")

// VaultOpt configures a Vault.
type VaultOpt func(*vaultCfg)

type vaultCfg struct {
	kms     KMS
	reuse   int
	maxAge  time.Duration
	nowFunc func() time.Time
}

// VaultKMS routes KEK operations of KMS-backed key versions to k. Versions
// with a local KEK are always wrapped locally.
func VaultKMS(k KMS) VaultOpt { return func(c *vaultCfg) { c.kms = k } }

// DataKeyReuse lets one data key encrypt up to n records within maxAge before
// a new one is generated and wrapped. Without it, KMS and v1 versions give
// every record its own data key, and X25519 versions reuse one for up to
// 4096 records within 10 minutes (see hpkeReuse); a remote KMS needs reuse
// (one KMS call per record would cap throughput at the KMS's rate). Records stay independently decryptable:
// each carries the wrapped data key and a random nonce. n is capped at 2^24,
// far below the 2^32 random-nonce limit of AES-GCM.
func DataKeyReuse(n int, maxAge time.Duration) VaultOpt {
	return func(c *vaultCfg) {
		c.reuse = min(max(n, 1), 1<<24)
		c.maxAge = maxAge
	}
}

// Vault seals and opens PANs for the vault topic. It is safe for concurrent
// use. A vault over a tokenizer keyring seals only.
type Vault struct {
	kr  *Keyring
	kms KMS // for KMS-backed versions; nil without one
	cfg vaultCfg

	mu  sync.Mutex
	dek map[uint32]*dataKey
}

type dataKey struct {
	aead    cipher.AEAD
	wrapped []byte
	uses    int
	born    time.Time
}

// NewVault returns a Vault over the keyring kr.
func NewVault(kr *Keyring, opts ...VaultOpt) *Vault {
	c := vaultCfg{nowFunc: time.Now}
	for _, o := range opts {
		o(&c)
	}
	return &Vault{kr: kr, kms: c.kms, cfg: c, dek: map[uint32]*dataKey{}}
}

// Keyring returns the vault's keyring.
func (v *Vault) Keyring() *Keyring { return v.kr }

// aad binds a ciphertext to its token and key version.
func aad(token string, version uint32) []byte {
	b := make([]byte, 0, 32+len(token))
	b = append(b, "pcistream/vault/v1\x00"...)
	b = append(b, token...)
	b = append(b, 0)
	b = strconv.AppendUint(b, uint64(version), 10)
	return b
}

// hpkeInfo binds a sealed data key to its purpose and key version.
func hpkeInfo(version uint32) []byte {
	return strconv.AppendUint([]byte("pcistream/vault-data-key/v"), uint64(version), 10)
}

// wrapKey wraps a data key of version: sealed to its X25519 public key,
// wrapped by its KMS key, or (v1) by its local KEK.
func (v *Vault) wrapKey(ctx context.Context, version uint32, key []byte) ([]byte, error) {
	kv, err := v.kr.version(version)
	if err != nil {
		return nil, err
	}
	switch kv.wrap {
	case wrapHPKE:
		pk, err := hpkeKEM.NewPublicKey(kv.vaultPub)
		if err != nil {
			return nil, err
		}
		return hpke.Seal(pk, hpkeKDF, hpkeAEAD, hpkeInfo(version), key)
	case wrapAESKW:
		return aesKeyWrap(kv.kek, key)
	}
	if v.kms == nil {
		return nil, fmt.Errorf("%w %d: it is held by KMS key %q, configure the KMS", ErrNoKEK, version, kv.kmsKeyID)
	}
	return v.kms.Wrap(ctx, KeyRef{Version: version, KMSKeyID: kv.kmsKeyID}, key, dataKeyWrapContext)
}

// unwrapKey reverses wrapKey; only a keyring that may open can.
func (v *Vault) unwrapKey(ctx context.Context, version uint32, wrapped []byte) ([]byte, error) {
	kv, err := v.kr.version(version)
	if err != nil {
		return nil, err
	}
	if v.kr.role == RoleTokenizer {
		return nil, ErrSealOnly
	}
	switch kv.wrap {
	case wrapHPKE:
		if kv.vaultPriv == nil {
			return nil, fmt.Errorf("%w %d: the keyring holds no vault private key for it", ErrNoKEK, version)
		}
		sk, err := hpkeKEM.NewPrivateKey(kv.vaultPriv)
		if err != nil {
			return nil, err
		}
		return hpke.Open(sk, hpkeKDF, hpkeAEAD, hpkeInfo(version), wrapped)
	case wrapAESKW:
		return aesKeyUnwrap(kv.kek, wrapped)
	}
	if v.kms == nil {
		return nil, fmt.Errorf("%w %d: it is held by KMS key %q, configure the KMS", ErrNoKEK, version, kv.kmsKeyID)
	}
	return v.kms.Unwrap(ctx, KeyRef{Version: version, KMSKeyID: kv.kmsKeyID}, wrapped, dataKeyWrapContext)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Default data-key reuse of versions that seal to an X25519 public key:
// every new data key costs an X25519 key generation and exchange (tens of
// times an AES key wrap), so by default one data key serves up to
// hpkeReuse records within hpkeMaxAge. Each record still carries its sealed
// data key and its own random nonce.
const (
	hpkeReuse  = 4096
	hpkeMaxAge = 10 * time.Minute
)

// reuse returns how many records one data key of version may encrypt, and
// for how long: DataKeyReuse when set, else 1 (HPKE versions: hpkeReuse).
func (v *Vault) reuse(version uint32) (int, time.Duration) {
	if v.cfg.reuse > 0 {
		return v.cfg.reuse, v.cfg.maxAge
	}
	if kv, ok := v.kr.versions[version]; ok && kv.wrap == wrapHPKE {
		return hpkeReuse, hpkeMaxAge
	}
	return 1, 0
}

// dataKeyFor returns a data key for version, generating and wrapping a new one
// when reuse is exhausted.
func (v *Vault) dataKeyFor(ctx context.Context, version uint32) (*dataKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.cfg.nowFunc()
	reuse, maxAge := v.reuse(version)
	if d := v.dek[version]; d != nil && d.uses < reuse && (maxAge <= 0 || now.Sub(d.born) < maxAge) {
		d.uses++
		return d, nil
	}
	key, err := randomKey()
	if err != nil {
		return nil, err
	}
	defer clear(key)
	wrapped, err := v.wrapKey(ctx, version, key)
	if err != nil {
		return nil, fmt.Errorf("wrapping data key with KEK version %d: %w", version, err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	d := &dataKey{aead: aead, wrapped: wrapped, uses: 1, born: now}
	v.dek[version] = d
	return d, nil
}

// Seal encrypts pan for the vault record of token. The key version is the
// token's own, so a token and its vault record always share a version.
func (v *Vault) Seal(ctx context.Context, token string, pan []byte) (Sealed, error) {
	version, err := ParseToken(token)
	if err != nil {
		return Sealed{}, err
	}
	d, err := v.dataKeyFor(ctx, version)
	if err != nil {
		return Sealed{}, err
	}
	nonce := make([]byte, d.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return Sealed{}, fmt.Errorf("vault nonce: %w", err)
	}
	return Sealed{
		KeyVersion: version,
		WrappedKey: d.wrapped,
		Nonce:      nonce,
		Ciphertext: d.aead.Seal(nil, nonce, pan, aad(token, version)),
	}, nil
}

// Open decrypts the vault record s of token and returns the PAN. The caller
// owns the returned slice and should clear it after use.
func (v *Vault) Open(ctx context.Context, token string, s Sealed) ([]byte, error) {
	tv, err := ParseToken(token)
	if err != nil {
		return nil, err
	}
	if tv != s.KeyVersion {
		return nil, fmt.Errorf("vault record has key version %d but the token has %d: %w", s.KeyVersion, tv, ErrDecrypt)
	}
	key, err := v.unwrapKey(ctx, s.KeyVersion, s.WrappedKey)
	if errors.Is(err, ErrSealOnly) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("unwrapping data key with KEK version %d: %w", s.KeyVersion, err)
	}
	defer clear(key)
	aead, err := newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("%w: data key: %v", ErrDecrypt, err)
	}
	if len(s.Nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("%w: nonce is %d bytes", ErrDecrypt, len(s.Nonce))
	}
	pan, err := aead.Open(nil, s.Nonce, s.Ciphertext, aad(token, s.KeyVersion))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pan, nil
}
