package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// TLSConfig says how the gateway serves TLS.
type TLSConfig struct {
	// CertFile and KeyFile are the server's PEM certificate and key.
	CertFile, KeyFile string
	// ClientCAFile, when set, enables mutual TLS: client certificates are
	// verified against these CAs.
	ClientCAFile string
	// RequireClientCert refuses connections without a verified client
	// certificate; otherwise one is verified when given (payment pages
	// connect without one, back ends with one).
	RequireClientCert bool
}

// ServerTLS builds the server's TLS configuration (TLS 1.2 or later).
func ServerTLS(c TLSConfig) (*tls.Config, error) {
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("gateway: --tls-cert and --tls-key are required (or --insecure-plaintext for local development)")
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("gateway: loading the TLS certificate %s: %w", c.CertFile, err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("gateway: reading the client CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("gateway: %s holds no PEM certificate", c.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		if c.RequireClientCert {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	} else if c.RequireClientCert {
		return nil, errors.New("gateway: --tls-require-client-cert needs --tls-client-ca")
	}
	return tc, nil
}

// Serve serves h on ln until ctx is done, with TLS when tc is not nil, then
// shuts down gracefully (in-flight requests finish).
func Serve(ctx context.Context, ln net.Listener, h http.Handler, tc *tls.Config, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tc,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      35 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		// net/http's own messages (TLS handshake errors, bad requests)
		// go through the masking logger too.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx) //nolint:errcheck // best effort on the way out
	}()
	err := srv.Serve(ln)
	<-done
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}
