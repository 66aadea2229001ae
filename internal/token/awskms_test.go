package token

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// fakeKMS speaks the AWS KMS JSON 1.1 protocol (TrentService.Encrypt and
// Decrypt) over HTTP, enough to exercise AWSKMS through the real SDK client:
// request signing, serialization, encryption context and error decoding.
type fakeKMS struct {
	mu    sync.Mutex
	aead  cipher.AEAD
	blobs map[string]fakeBlob // ciphertext -> what it was made with
	calls []string
}

type fakeBlob struct {
	keyID string
	ec    map[string]string
	plain []byte
}

func newFakeKMS(t *testing.T) *fakeKMS {
	k := make([]byte, 32)
	rand.Read(k)
	b, _ := aes.NewCipher(k)
	g, _ := cipher.NewGCM(b)
	return &fakeKMS{aead: g, blobs: map[string]fakeBlob{}}
}

func (f *fakeKMS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	target := r.Header.Get("X-Amz-Target")
	f.calls = append(f.calls, target)
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256") {
		kmsError(w, "UnrecognizedClientException", "unsigned request")
		return
	}
	var in struct {
		KeyId             string
		Plaintext         []byte
		CiphertextBlob    []byte
		EncryptionContext map[string]string
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		kmsError(w, "ValidationException", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch target {
	case "TrentService.Encrypt":
		nonce := make([]byte, 12)
		rand.Read(nonce)
		blob := f.aead.Seal(nonce, nonce, in.Plaintext, []byte(in.KeyId))
		f.blobs[string(blob)] = fakeBlob{keyID: in.KeyId, ec: in.EncryptionContext, plain: in.Plaintext}
		json.NewEncoder(w).Encode(map[string]any{"CiphertextBlob": blob, "KeyId": in.KeyId})
	case "TrentService.Decrypt":
		b, ok := f.blobs[string(in.CiphertextBlob)]
		if !ok || b.keyID != in.KeyId || !maps.Equal(b.ec, in.EncryptionContext) {
			kmsError(w, "InvalidCiphertextException", "")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"Plaintext": b.plain, "KeyId": in.KeyId})
	default:
		kmsError(w, "UnsupportedOperationException", target)
	}
}

func kmsError(w http.ResponseWriter, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

func TestAWSKMSEnvelope(t *testing.T) {
	ctx := context.Background()
	f := newFakeKMS(t)
	srv := httptest.NewServer(f)
	defer srv.Close()
	cl := kms.New(kms.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
	})
	ak := NewAWSKMS(cl)
	const keyID = "arn:aws:kms:us-east-1:111122223333:key/test"

	base, _ := NewKeyring()
	kr, err := base.RotateKMS(ctx, ak, keyID)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := kr.Marshal()
	// The file form holds the HMAC key of v2 only wrapped.
	var file keyringFile
	json.Unmarshal(raw, &file)
	if v2 := file.Versions[1]; v2.HMACKey != nil || v2.HMACKeyWrapped == nil || v2.KEK != nil || v2.KMSKeyID != keyID {
		t.Fatalf("v2 file form: %+v", v2.KMSKeyID)
	}
	if _, err := Parse(ctx, raw); err == nil {
		t.Fatal("parsing a KMS keyring without a KMS must fail")
	}
	loaded, err := Parse(ctx, raw, WithKMS(ak))
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := kr.Tokenize(testPANs[0])
	b, v, _ := loaded.Tokenize(testPANs[0])
	if a != b || v != 2 {
		t.Fatal("KMS-loaded keyring tokenizes differently")
	}

	vault := NewVault(loaded, VaultKMS(ak), DataKeyReuse(100, 0))
	s, err := vault.Seal(ctx, b, testPANs[0])
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := vault.Seal(ctx, b, testPANs[1])
	if !bytes.Equal(s.WrappedKey, s2.WrappedKey) {
		t.Fatal("data key not reused under KMS")
	}
	got, err := vault.Open(ctx, b, s)
	if err != nil || !bytes.Equal(got, testPANs[0]) {
		t.Fatalf("open via KMS: %v", err)
	}
	// v1 (local KEK) still works next to the KMS version.
	t1, _ := loaded.TokenizeVersion(1, testPANs[0])
	s1, err := vault.Seal(ctx, t1, testPANs[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, err := vault.Open(ctx, t1, s1); err != nil || !bytes.Equal(got, testPANs[0]) {
		t.Fatalf("open v1: %v", err)
	}
	// A data key cannot be unwrapped as an HMAC key (encryption context differs).
	if _, err := ak.Unwrap(ctx, KeyRef{Version: 2, KMSKeyID: keyID}, s.WrappedKey, hmacWrapContext); err == nil ||
		!strings.Contains(err.Error(), "InvalidCiphertextException") {
		t.Fatalf("cross-purpose unwrap err = %v", err)
	}
	// Without a KMS, a KMS-backed version cannot be opened.
	if _, err := NewVault(loaded).Open(ctx, b, s); err == nil {
		t.Fatal("opened a KMS record without KMS")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) < 4 {
		t.Fatalf("KMS calls = %v", f.calls)
	}
}
