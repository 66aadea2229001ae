package gateway_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pcistream/pcistream/processors/gateway"
	"github.com/pcistream/pcistream/schemas"
)

const jwtSecret = "0123456789abcdef0123456789abcdef-test-secret"

func bearer(t *testing.T, secret, sub string, roles []string, exp time.Duration) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(exp).Unix()}
	if roles != nil {
		claims["roles"] = roles
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + s
}

// pki is a test CA with a server certificate and client certificates.
type pki struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
	server tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{ca: ca, caKey: key, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.server = p.issue(t, "localhost", nil, x509.ExtKeyUsageServerAuth)
	return p
}

func (p *pki) issue(t *testing.T, cn string, ous []string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, OrganizationalUnit: ous},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestTokenizeAndDetokenizeRoles(t *testing.T) {
	p := newPKI(t)
	srv := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool, ClientAuth: tls.VerifyClientCertIfGiven}
	cli := &tls.Config{RootCAs: p.pool}
	auth, err := gateway.NewAuthenticator(gateway.AuthConfig{JWTKey: []byte(jwtSecret)})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvTLS(t, nil, srv, cli, gateway.Auth(auth), gateway.DetokenizeRate(0.01, 3))
	card := testCards[2]
	tokBody := `{"pan":"` + card + `"}`

	// Tokenize needs the tokenize role.
	if r := e.post("/v1/tokenize", tokBody); r.status != http.StatusUnauthorized {
		t.Fatalf("tokenize without credentials: %d", r.status)
	}
	if r := e.post("/v1/tokenize", tokBody, "Authorization", bearer(t, jwtSecret, "pos", []string{"payments"}, time.Minute)); r.status != http.StatusForbidden {
		t.Fatalf("tokenize without the role: %d", r.status)
	}
	r := e.post("/v1/tokenize", tokBody, "Authorization", bearer(t, jwtSecret, "pos", []string{gateway.RoleTokenize}, time.Minute))
	var tk struct {
		Token string `json:"token"`
		Last4 string `json:"last4"`
		Brand string `json:"brand"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &tk) != nil || !strings.HasPrefix(tk.Token, "tok_v") || tk.Last4 != card[len(card)-4:] {
		t.Fatalf("tokenize: %d %s", r.status, redact(r.body))
	}
	// The vault entry was committed before the answer.
	if n := len(e.read(e.topics.Vault)); n != 1 {
		t.Fatalf("vault holds %d committed entries after tokenize, want 1", n)
	}

	detok := `{"token":"` + tk.Token + `","reason":"TICKET-1234 chargeback evidence"}`
	denied := []struct {
		name   string
		hdr    []string
		cert   *tls.Certificate
		status int
	}{
		{"no credentials", nil, nil, http.StatusUnauthorized},
		{"tokenize role only", []string{"Authorization", bearer(t, jwtSecret, "pos", []string{gateway.RoleTokenize}, time.Minute)}, nil, http.StatusForbidden},
		{"expired token", []string{"Authorization", bearer(t, jwtSecret, "ops", []string{gateway.RoleDetokenize}, -time.Minute)}, nil, http.StatusUnauthorized},
		{"wrong signing key", []string{"Authorization", bearer(t, strings.Repeat("x", 40), "ops", []string{gateway.RoleDetokenize}, time.Minute)}, nil, http.StatusUnauthorized},
		{"alg none", []string{"Authorization", "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJvcHMiLCJyb2xlcyI6WyJkZXRva2VuaXplIl0sImV4cCI6OTk5OTk5OTk5OX0."}, nil, http.StatusUnauthorized},
		{"certificate without the role", nil, ptr(p.issue(t, "bob", []string{"payments"}, x509.ExtKeyUsageClientAuth)), http.StatusForbidden},
	}
	for _, c := range denied {
		got := e.postAs(c.cert, "/v1/detokenize", detok, c.hdr...)
		if got.status != c.status {
			t.Fatalf("%s: %d, want %d (%s)", c.name, got.status, c.status, redact(got.body))
		}
	}
	// Allowed by JWT role and by certificate OU; each is audited first.
	for _, c := range []struct {
		name, actor string
		hdr         []string
		cert        *tls.Certificate
	}{
		{"jwt", "gateway:jwt:ops", []string{"Authorization", bearer(t, jwtSecret, "ops", []string{gateway.RoleDetokenize}, time.Minute)}, nil},
		{"client certificate", "gateway:cert:alice", nil, ptr(p.issue(t, "alice", []string{gateway.RoleDetokenize}, x509.ExtKeyUsageClientAuth))},
	} {
		got := e.postAs(c.cert, "/v1/detokenize", detok, c.hdr...)
		var out struct {
			PAN string `json:"pan"`
		}
		if got.status != http.StatusOK || json.Unmarshal(got.body, &out) != nil || out.PAN != card {
			t.Fatalf("%s: %d %s", c.name, got.status, redact(got.body))
		}
		if !e.audited(c.actor, tk.Token) {
			t.Fatalf("%s: no detokenize audit event by %s", c.name, c.actor)
		}
	}
	// A reason is required; refusals reveal nothing.
	if got := e.postAs(nil, "/v1/detokenize", `{"token":"`+tk.Token+`","reason":"x"}`, "Authorization", bearer(t, jwtSecret, "ops2", []string{gateway.RoleDetokenize}, time.Minute)); got.status != http.StatusBadRequest {
		t.Fatalf("no reason: %d", got.status)
	}
	// Rate limited per caller: ops has used 1 of its burst of 3.
	statuses := []int{}
	for range 3 {
		statuses = append(statuses, e.postAs(nil, "/v1/detokenize", detok, "Authorization", bearer(t, jwtSecret, "ops", []string{gateway.RoleDetokenize}, time.Minute)).status)
	}
	if statuses[0] != http.StatusOK || statuses[1] != http.StatusOK || statuses[2] != http.StatusTooManyRequests {
		t.Fatalf("rate limit: statuses %v, want [200 200 429]", statuses)
	}
	e.assertNoLeaks(nil)
}

func ptr[T any](v T) *T { return &v }

// postAs posts with a client certificate (nil: none). Detokenize answers
// are not kept for the leak scan: they are the one place a PAN is sent.
func (e *env) postAs(cert *tls.Certificate, path, body string, hdr ...string) response {
	e.t.Helper()
	saved := e.client
	cfg := e.clientTLS.Clone()
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	e.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer func() { e.client = saved }()
	r := e.post(path, body, hdr...)
	if path == "/v1/detokenize" {
		e.mu.Lock()
		e.answers = e.answers[:len(e.answers)-1]
		e.mu.Unlock()
	}
	return r
}

// audited reports whether a committed detokenize audit event by actor for
// tok exists.
func (e *env) audited(actor, tok string) bool {
	for _, r := range e.read(e.topics.AuditEvents) {
		var ev schemas.AuditEvent
		if err := e.serde.Decode(e.t.Context(), r.Value, &ev); err != nil {
			e.t.Fatalf("audit event does not decode: %v", err)
		}
		if ev.Action == "detokenize" && ev.Actor == actor && ev.Subject == tok && ev.Outcome == "ok" {
			return true
		}
	}
	return false
}

func TestServerTLSRefusesToServeWithoutCertificates(t *testing.T) {
	if _, err := gateway.ServerTLS(gateway.TLSConfig{}); err == nil {
		t.Fatal("no certificate: want an error (plain HTTP only with the explicit development flag)")
	}
	if _, err := gateway.ServerTLS(gateway.TLSConfig{CertFile: "x", KeyFile: "y", RequireClientCert: true}); err == nil {
		t.Fatal("required client certificates without a CA: want an error")
	}
	if _, err := gateway.NewAuthenticator(gateway.AuthConfig{JWTKey: []byte("short")}); err == nil {
		t.Fatal("a short HMAC secret: want an error")
	}
}
