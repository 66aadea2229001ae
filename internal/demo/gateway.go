package demo

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/processors/gateway"
	"github.com/pcistream/pcistream/schemas"
)

// startGateway serves the HTTP gateway over TLS with a throwaway
// self-signed certificate on a free local port, and returns its URL and a
// client that trusts it.
func startGateway(ctx context.Context, kopts []kgo.Opt, kr *token.Keyring, vault *token.Vault, serde *schemas.Serde,
	topics config.Topics, log *slog.Logger) (*gateway.Service, string, *http.Client, error) {
	srvTLS, pool, err := selfSigned()
	if err != nil {
		return nil, "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, fmt.Errorf("gateway listener: %w", err)
	}
	svc, err := gateway.Start(ctx, gateway.ServiceConfig{
		ClientOpts: kopts, Keyring: kr, Vault: vault, Serde: serde, Topics: topics,
		TransactionalID: "demo-gateway", Listener: ln, TLS: srvTLS, Logger: log,
	})
	if err != nil {
		ln.Close()
		return nil, "", nil, err
	}
	cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	return svc, "https://" + svc.Addr(), cl, nil
}

// postPayments sends each payment to POST /v1/payments with its
// idempotency key, as a payment page or a PSP webhook would, retrying a 503
// (the gateway's fail-closed answer) a few times. It returns how many were
// accepted fresh and how many were answered from the Idempotency-Key state.
func postPayments(ctx context.Context, cl *http.Client, url string, ps []schemas.RawPayment) (fresh, replayed int, err error) {
	for _, p := range ps {
		body, err := json.Marshal(p)
		if err != nil {
			return fresh, replayed, err
		}
		// The payload's idempotency key travels as the header.
		body = bytes.Replace(body, []byte(`"idempotency_key":"`+p.IdempotencyKey+`",`), nil, 1)
		for attempt := 0; ; attempt++ {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/payments", bytes.NewReader(body))
			if err != nil {
				return fresh, replayed, err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(gateway.IdempotencyKeyHeader, p.IdempotencyKey)
			resp, err := cl.Do(req)
			if err != nil {
				return fresh, replayed, fmt.Errorf("POST /v1/payments (%s): %w", p.PaymentID, err)
			}
			io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the status matters
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusAccepted && resp.Header.Get(gateway.ReplayedHeader) == "true":
				replayed++
			case resp.StatusCode == http.StatusAccepted:
				fresh++
			case resp.StatusCode == http.StatusServiceUnavailable && attempt < 5:
				time.Sleep(time.Second)
				continue
			default:
				return fresh, replayed, fmt.Errorf("POST /v1/payments (%s): status %d", p.PaymentID, resp.StatusCode)
			}
			break
		}
	}
	return fresh, replayed, nil
}

// selfSigned returns a server TLS config for 127.0.0.1 with a fresh
// self-signed certificate, and a pool trusting it.
func selfSigned() (*tls.Config, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "pcistream demo gateway"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("demo gateway certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool, nil
}

// gwRetries is the number of webhook retries the traffic sends through the
// gateway (the first five authorizations again).
func gwRetries(tr *traffic) int {
	seen := map[string]bool{}
	n := 0
	for _, p := range tr.viaHTTP {
		if seen[p.IdempotencyKey] {
			n++
		}
		seen[p.IdempotencyKey] = true
	}
	return n
}
