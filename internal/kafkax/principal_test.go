package kafkax

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pcistream/pcistream/internal/config"
)

func TestPrincipal(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ops-alice", Organization: []string{"Acme"}},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "client.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		k    config.Kafka
		want string
	}{
		{"sasl", config.Kafka{SASL: config.SASL{Mechanism: "SCRAM-SHA-512", Username: "alice"}}, "User:alice"},
		{"tls client certificate", config.Kafka{TLS: config.TLS{CertFile: certFile}}, "User:CN=ops-alice,O=Acme"},
		{"unauthenticated", config.Kafka{}, Anonymous},
	} {
		got, err := Principal(tc.k)
		if err != nil || got != tc.want {
			t.Errorf("%s: Principal = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := Principal(config.Kafka{SASL: config.SASL{Mechanism: "PLAIN"}}); err == nil {
		t.Error("SASL without a user name: no error")
	}
}
