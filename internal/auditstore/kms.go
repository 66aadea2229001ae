package auditstore

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/pcistream/pcistream/internal/chain"
)

// KMSSigner signs checkpoints with an AWS KMS key of spec
// ECC_NIST_EDWARDS25519 (pure Ed25519, ED25519_SHA_512 over the raw
// message), so the private key never leaves KMS. Signatures verify with the
// standard Ed25519 public key that NewKMSSigner fetches once.
type KMSSigner struct {
	cl    *kms.Client
	keyID string
	pub   ed25519.PublicKey
}

var _ chain.Signer = (*KMSSigner)(nil)

// NewKMSSigner fetches the public key of keyID and checks it is Ed25519.
func NewKMSSigner(ctx context.Context, cl *kms.Client, keyID string) (*KMSSigner, error) {
	out, err := cl.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		return nil, fmt.Errorf("KMS key %s: reading the public key: %w", keyID, err)
	}
	if out.KeySpec != kmstypes.KeySpecEccNistEdwards25519 {
		return nil, fmt.Errorf("KMS key %s has key spec %s; checkpoints need ECC_NIST_EDWARDS25519", keyID, out.KeySpec)
	}
	k, err := x509.ParsePKIXPublicKey(out.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("KMS key %s: parsing the public key: %w", keyID, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("KMS key %s: public key is %T, want Ed25519", keyID, k)
	}
	return &KMSSigner{cl: cl, keyID: keyID, pub: pub}, nil
}

// Public returns the Ed25519 public key.
func (s *KMSSigner) Public() ed25519.PublicKey { return s.pub }

// Sign asks KMS for a pure Ed25519 signature of msg and checks it locally.
func (s *KMSSigner) Sign(ctx context.Context, msg []byte) ([]byte, error) {
	out, err := s.cl.Sign(ctx, &kms.SignInput{
		KeyId:            aws.String(s.keyID),
		Message:          msg,
		MessageType:      kmstypes.MessageTypeRaw,
		SigningAlgorithm: kmstypes.SigningAlgorithmSpecEd25519Sha512,
	})
	if err != nil {
		return nil, fmt.Errorf("KMS sign with %s: %w", s.keyID, err)
	}
	if !ed25519.Verify(s.pub, msg, out.Signature) {
		return nil, fmt.Errorf("KMS key %s returned a signature that does not verify", s.keyID)
	}
	return out.Signature, nil
}
