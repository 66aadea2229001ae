package gateway

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pcistream/pcistream/internal/pan"
)

// Roles a caller can hold.
const (
	RoleTokenize   = "tokenize"
	RoleDetokenize = "detokenize"
)

// Principal is an authenticated caller.
type Principal struct {
	// Name identifies the caller in audit events: "cert:<CN>" or
	// "jwt:<sub>".
	Name  string
	Roles []string
}

// Has reports whether p holds role.
func (p Principal) Has(role string) bool { return slices.Contains(p.Roles, role) }

// AuthConfig says how callers authenticate for the tokenize and detokenize
// APIs. A verified client certificate (mutual TLS) carries its roles as
// Organizational Unit values of its subject and its name as the Common Name;
// a bearer token is a JWT signed by JWTKey with a "roles" (array) or "role"
// (string) claim, a subject and an expiry.
type AuthConfig struct {
	// JWTKey verifies bearer tokens: a PEM public key (RSA, ECDSA or
	// Ed25519) or, for HMAC, a shared secret of at least 32 bytes. Empty
	// disables bearer tokens.
	JWTKey []byte
	// Issuer and Audience, when set, must match the token's iss and aud.
	Issuer, Audience string
	// Leeway tolerates clock skew on exp/nbf (default 30s).
	Leeway time.Duration
}

// Authenticator authenticates callers by client certificate or bearer token.
type Authenticator struct {
	key     any
	methods []string
	parser  *jwt.Parser
	det     *pan.Detector
}

// NewAuthenticator returns an Authenticator for c.
func NewAuthenticator(c AuthConfig) (*Authenticator, error) {
	a := &Authenticator{det: pan.New()}
	if len(c.JWTKey) == 0 {
		return a, nil
	}
	if blk, _ := pem.Decode(c.JWTKey); blk != nil {
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("JWT key: a PEM block that is not a PKIX public key: %w", err)
		}
		switch pub.(type) {
		case *rsa.PublicKey:
			a.methods = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
		case *ecdsa.PublicKey:
			a.methods = []string{"ES256", "ES384", "ES512"}
		case ed25519.PublicKey:
			a.methods = []string{"EdDSA"}
		default:
			return nil, fmt.Errorf("JWT key: unsupported public key type %T", pub)
		}
		a.key = pub
	} else {
		secret := []byte(strings.TrimSpace(string(c.JWTKey)))
		if len(secret) < 32 {
			return nil, errors.New("JWT key: an HMAC secret must be at least 32 bytes (or give a PEM public key)")
		}
		a.key, a.methods = secret, []string{"HS256", "HS384", "HS512"}
	}
	if c.Leeway <= 0 {
		c.Leeway = 30 * time.Second
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(a.methods), jwt.WithExpirationRequired(), jwt.WithLeeway(c.Leeway)}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	a.parser = jwt.NewParser(opts...)
	return a, nil
}

// roleClaims are the claims the gateway reads from a bearer token.
type roleClaims struct {
	jwt.RegisteredClaims
	Roles []string `json:"roles,omitempty"`
	Role  string   `json:"role,omitempty"`
}

// errUnauthenticated is returned when the request carries no usable
// credential; its text is safe to return.
var errUnauthenticated = errors.New("authenticate with a client certificate or a bearer token")

// Authenticate returns the caller of r. A bearer token, when present, wins
// over the client certificate (a proxy may terminate mTLS for many callers).
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		raw, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || a.parser == nil {
			return Principal{}, errUnauthenticated
		}
		var c roleClaims
		if _, err := a.parser.ParseWithClaims(strings.TrimSpace(raw), &c, func(*jwt.Token) (any, error) { return a.key, nil }); err != nil {
			// jwt's errors name the failed check, never claim values.
			return Principal{}, fmt.Errorf("bearer token rejected: %w", err)
		}
		if c.Subject == "" || a.det.ContainsString(c.Subject) {
			return Principal{}, errors.New("bearer token rejected: no usable sub claim")
		}
		roles := c.Roles
		if c.Role != "" {
			roles = append(roles, c.Role)
		}
		return Principal{Name: "jwt:" + c.Subject, Roles: roles}, nil
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		leaf := r.TLS.VerifiedChains[0][0]
		if leaf.Subject.CommonName == "" || a.det.ContainsString(leaf.Subject.CommonName) {
			return Principal{}, errors.New("client certificate has no usable common name")
		}
		return Principal{Name: "cert:" + leaf.Subject.CommonName, Roles: leaf.Subject.OrganizationalUnit}, nil
	}
	return Principal{}, errUnauthenticated
}
