package auditstore_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/pcistream/pcistream/internal/auditstore"
	"github.com/pcistream/pcistream/internal/chain"
)

// fakeKMS speaks enough of the KMS JSON 1.1 protocol (GetPublicKey, Sign)
// to drive KMSSigner through the real SDK client, holding a real Ed25519 key.
type fakeKMS struct {
	priv ed25519.PrivateKey
	spec string
}

func (f *fakeKMS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256") {
		http.Error(w, "unsigned", http.StatusForbidden)
		return
	}
	var in struct {
		KeyId            string
		Message          []byte
		MessageType      string
		SigningAlgorithm string
	}
	json.NewDecoder(r.Body).Decode(&in)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch r.Header.Get("X-Amz-Target") {
	case "TrentService.GetPublicKey":
		der, _ := x509.MarshalPKIXPublicKey(f.priv.Public())
		json.NewEncoder(w).Encode(map[string]any{"KeyId": in.KeyId, "KeySpec": f.spec, "PublicKey": der, "KeyUsage": "SIGN_VERIFY"})
	case "TrentService.Sign":
		if in.MessageType != "RAW" || in.SigningAlgorithm != "ED25519_SHA_512" {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]any{"__type": "ValidationException", "message": "bad algorithm"})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"KeyId": in.KeyId, "Signature": ed25519.Sign(f.priv, in.Message), "SigningAlgorithm": in.SigningAlgorithm})
	default:
		w.WriteHeader(http.StatusBadRequest)
	}
}

func kmsClient(url string) *kms.Client {
	return kms.New(kms.Options{Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
}

func TestKMSSignerSignsVerifiableCheckpoints(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	srv := httptest.NewServer(&fakeKMS{priv: priv, spec: "ECC_NIST_EDWARDS25519"})
	defer srv.Close()
	ctx := context.Background()
	s, err := auditstore.NewKMSSigner(ctx, kmsClient(srv.URL), "alias/audit")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Public().Equal(priv.Public()) {
		t.Fatal("wrong public key")
	}
	c := &chain.Checkpoint{Version: chain.FormatVersion, Time: time.Now(), Heads: []chain.Head{{Partition: 0, TreeSize: 1}}}
	if err := chain.SignCheckpoint(ctx, s, c); err != nil {
		t.Fatal(err)
	}
	if err := chain.VerifyCheckpointSignature(c, priv.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}

	rsa := httptest.NewServer(&fakeKMS{priv: priv, spec: "RSA_2048"})
	defer rsa.Close()
	if _, err := auditstore.NewKMSSigner(ctx, kmsClient(rsa.URL), "alias/rsa"); err == nil {
		t.Fatal("accepted a non-Ed25519 KMS key")
	}
}
