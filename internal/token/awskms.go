package token

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// AWSKMSAPI is the subset of the AWS KMS client that AWSKMS uses; *kms.Client
// implements it.
type AWSKMSAPI interface {
	Encrypt(ctx context.Context, in *kms.EncryptInput, opts ...func(*kms.Options)) (*kms.EncryptOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, opts ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// AWSKMS wraps key material with AWS KMS symmetric keys (Encrypt/Decrypt,
// SYMMETRIC_DEFAULT). The purpose and key version travel in the encryption
// context, so KMS refuses to unwrap a data key as an HMAC key or under another
// version, and CloudTrail logs every unwrap with them.
type AWSKMS struct {
	api AWSKMSAPI
}

// NewAWSKMS returns a KMS backed by AWS KMS through api (normally
// kms.NewFromConfig(awsCfg)).
func NewAWSKMS(api AWSKMSAPI) *AWSKMS { return &AWSKMS{api: api} }

func encryptionContext(ref KeyRef, purpose string) map[string]string {
	return map[string]string{
		"pcistream:purpose":     purpose,
		"pcistream:key_version": strconv.FormatUint(uint64(ref.Version), 10),
	}
}

// Wrap encrypts key under the KMS key ref.KMSKeyID.
func (a *AWSKMS) Wrap(ctx context.Context, ref KeyRef, key []byte, purpose string) ([]byte, error) {
	if ref.KMSKeyID == "" {
		return nil, errNoKMSKey
	}
	out, err := a.api.Encrypt(ctx, &kms.EncryptInput{
		KeyId:               &ref.KMSKeyID,
		Plaintext:           key,
		EncryptionContext:   encryptionContext(ref, purpose),
		EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault,
	})
	if err != nil {
		return nil, fmt.Errorf("aws kms encrypt with %s: %w", ref.KMSKeyID, err)
	}
	return out.CiphertextBlob, nil
}

// Unwrap decrypts wrapped with the KMS key ref.KMSKeyID; KMS checks that the
// encryption context (purpose, key version) matches the one used to wrap.
func (a *AWSKMS) Unwrap(ctx context.Context, ref KeyRef, wrapped []byte, purpose string) ([]byte, error) {
	if ref.KMSKeyID == "" {
		return nil, errNoKMSKey
	}
	out, err := a.api.Decrypt(ctx, &kms.DecryptInput{
		KeyId:               &ref.KMSKeyID,
		CiphertextBlob:      wrapped,
		EncryptionContext:   encryptionContext(ref, purpose),
		EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault,
	})
	if err != nil {
		return nil, fmt.Errorf("aws kms decrypt with %s: %w", ref.KMSKeyID, err)
	}
	return out.Plaintext, nil
}
