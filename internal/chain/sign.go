package chain

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Signer signs checkpoints. The file signer below holds an Ed25519 key in
// memory; a KMS-backed signer only has to implement this interface.
type Signer interface {
	Public() ed25519.PublicKey
	Sign(ctx context.Context, msg []byte) ([]byte, error)
}

// KeyID returns the id of a public key: hex of the first 8 bytes of its
// SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

type fileSigner struct{ priv ed25519.PrivateKey }

func (s fileSigner) Public() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }
func (s fileSigner) Sign(_ context.Context, msg []byte) ([]byte, error) {
	return ed25519.Sign(s.priv, msg), nil
}

// NewSigner wraps an in-memory Ed25519 private key.
func NewSigner(priv ed25519.PrivateKey) Signer { return fileSigner{priv: priv} }

// GenerateKey creates a new Ed25519 key and returns it PEM-encoded (PKCS#8).
func GenerateKey() (privPEM []byte, err error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKey parses a PEM PKCS#8 Ed25519 private key.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" block (generate one with `pcistream audit keygen`)")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing PKCS#8 key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want Ed25519", k)
	}
	return priv, nil
}

// LoadSigner reads a PEM PKCS#8 Ed25519 private key file.
func LoadSigner(path string) (Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading signing key: %w", err)
	}
	priv, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return NewSigner(priv), nil
}

// EncodePublicKey returns the PEM (PKIX "PUBLIC KEY") form of pub, as
// published beside the checkpoints.
func EncodePublicKey(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKey parses a PEM PKIX Ed25519 public key.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM \"PUBLIC KEY\" block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is %T, want Ed25519", k)
	}
	return pub, nil
}

// LoadPublicKey reads a PEM public key file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading public key: %w", err)
	}
	return ParsePublicKey(b)
}

// SignCheckpoint fills in KeyID and Signature.
func SignCheckpoint(ctx context.Context, s Signer, c *Checkpoint) error {
	c.KeyID = KeyID(s.Public())
	c.Signature = ""
	sig, err := s.Sign(ctx, c.SignedBytes())
	if err != nil {
		return fmt.Errorf("signing checkpoint %d: %w", c.Sequence, err)
	}
	c.Signature = base64.StdEncoding.EncodeToString(sig)
	return nil
}

// VerifyCheckpointSignature checks c's signature with pub.
func VerifyCheckpointSignature(c *Checkpoint, pub ed25519.PublicKey) error {
	if c.KeyID != KeyID(pub) {
		return fmt.Errorf("checkpoint %d is signed by key %s, not the trusted key %s", c.Sequence, c.KeyID, KeyID(pub))
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("checkpoint %d: malformed signature", c.Sequence)
	}
	if !ed25519.Verify(pub, c.SignedBytes(), sig) {
		return fmt.Errorf("checkpoint %d: signature does not verify", c.Sequence)
	}
	return nil
}

// ErrTampered marks evidence that someone other than the auditor wrote to
// the trail: a head manifest or checkpoint that is unsigned, signed by an
// unknown key, or disagrees with the records still in Kafka. A writer that
// sees it must stop and raise an alarm, never skip or adopt anything.
var ErrTampered = errors.New("audit trail tampered with")

// Keyring is a set of trusted Ed25519 public keys by key id. Only keys an
// operator pinned belong in it, never keys read from the bucket.
type Keyring map[string]ed25519.PublicKey

// NewKeyring returns a keyring holding pubs.
func NewKeyring(pubs ...ed25519.PublicKey) Keyring {
	k := Keyring{}
	for _, p := range pubs {
		k.Add(p)
	}
	return k
}

// Add trusts pub.
func (k Keyring) Add(pub ed25519.PublicKey) { k[KeyID(pub)] = pub }

// IDs returns the trusted key ids.
func (k Keyring) IDs() []string {
	out := make([]string, 0, len(k))
	for id := range k {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func (k Keyring) verify(what, keyID, sigB64 string, msg []byte) error {
	if sigB64 == "" {
		return fmt.Errorf("%s is not signed", what)
	}
	pub, ok := k[keyID]
	if !ok {
		return fmt.Errorf("%s is signed by key %s, which is not a trusted key (trusted: %s)", what, keyID, strings.Join(k.IDs(), ", "))
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%s: malformed signature", what)
	}
	if !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("%s: signature does not verify under key %s", what, keyID)
	}
	return nil
}

// VerifyCheckpoint checks c's signature against the trusted keys.
func (k Keyring) VerifyCheckpoint(c *Checkpoint) error {
	return k.verify(fmt.Sprintf("checkpoint %d", c.Sequence), c.KeyID, c.Signature, c.SignedBytes())
}

// VerifyManifest checks m's signature against the trusted keys.
func (k Keyring) VerifyManifest(m *Manifest) error {
	return k.verify(fmt.Sprintf("manifest %d of partition %d", m.Sequence, m.Partition), m.KeyID, m.Signature, m.SignedBytes())
}

// SignManifest fills in m's KeyID and Signature.
func SignManifest(ctx context.Context, s Signer, m *Manifest) error {
	m.KeyID = KeyID(s.Public())
	m.Signature = ""
	sig, err := s.Sign(ctx, m.SignedBytes())
	if err != nil {
		return fmt.Errorf("signing manifest %d of partition %d: %w", m.Sequence, m.Partition, err)
	}
	m.Signature = base64.StdEncoding.EncodeToString(sig)
	return nil
}

// ParsePublicKeys parses every PEM "PUBLIC KEY" block in b (a trust file may
// hold the current key and the ones it replaced). It fails on anything else.
func ParsePublicKeys(b []byte) ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		pub, err := ParsePublicKey(pem.EncodeToMemory(blk))
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", len(out)+1, err)
		}
		out = append(out, pub)
	}
	if len(strings.TrimSpace(string(b))) > 0 {
		return nil, errors.New("trailing data that is not a PEM block")
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM \"PUBLIC KEY\" block")
	}
	return out, nil
}

// LoadPublicKeys reads a trust file of one or more PEM public keys.
func LoadPublicKeys(path string) ([]ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading trusted keys: %w", err)
	}
	keys, err := ParsePublicKeys(b)
	if err != nil {
		return nil, fmt.Errorf("trusted keys %s: %w", path, err)
	}
	return keys, nil
}
