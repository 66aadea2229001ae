package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/internal/telemetry"
	"github.com/pcistream/pcistream/processors/gateway"
	"github.com/pcistream/pcistream/schemas"
)

// gatewayFlags are the flags of `pcistream run gateway`.
type gatewayFlags struct {
	kms           kmsFlags
	listen        string
	tls           gateway.TLSConfig
	plaintext     bool
	txnID         string
	producers     int
	maxInFlight   int
	commitTimeout time.Duration
	window        time.Duration
	stateDir      string
	stateCache    int64
	stateFilter   int64
	jwtKeyFile    string
	jwtIssuer     string
	jwtAudience   string
	detokRate     float64
	detokBurst    int
	otlpEndpoint  string
	otlpInsecure  bool
	traceRatio    float64
	noopRoute     bool
	cpuProfile    string
	memProfile    string
	traceFile     string
}

// newRunGatewayCmd builds `pcistream run gateway`.
func newRunGatewayCmd(cfg *config.Config) *cobra.Command {
	var f gatewayFlags
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Serve the HTTPS API: card payloads in, context ids back; tokenize and detokenize",
		Long: `The gateway is the HTTP edge for producers that are not Kafka clients.

  POST /v1/payments    a JSON card payload (payment_id, event_type, pan, expiry_month,
                       expiry_year, cvv, cardholder_name, amount_minor, currency,
                       merchant_id, parent_payment_id, occurred_at, metadata), validated
                       like the tokenizer validates; written to payments.raw (Avro, CVV
                       removed) in a Kafka transaction with its Idempotency-Key entry;
                       202 {context_id, brand, last4} only after the commit.
                       Idempotency-Key: a retry gets the first answer, another body 409.
  POST /v1/tokenize    {"pan"} -> {"token"} once the vault entry is committed (role tokenize)
  POST /v1/detokenize  {"token","reason"} -> {"pan"}, audited first, rate limited
                       (role detokenize)

Callers of tokenize and detokenize authenticate with a client certificate (mutual TLS;
roles are the certificate subject's OU values) or a JWT bearer token signed by
--jwt-key with a "roles" claim. Kafka slow or down, or more than --max-in-flight
requests: 503 with Retry-After, never a 2xx for a payment not in Kafka.
Serves TLS (--tls-cert/--tls-key, --tls-client-ca for mutual TLS); plain HTTP only with
--insecure-plaintext, for local development.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runGateway(ctx, cfg, &f)
		},
	}
	fl := cmd.Flags()
	f.kms.bind(cmd)
	host, _ := os.Hostname()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8443", "address to serve the API on")
	fl.StringVar(&f.tls.CertFile, "tls-cert", "", "PEM server certificate")
	fl.StringVar(&f.tls.KeyFile, "tls-key", "", "PEM server key")
	fl.StringVar(&f.tls.ClientCAFile, "tls-client-ca", "", "PEM CA bundle for client certificates (enables mutual TLS)")
	fl.BoolVar(&f.tls.RequireClientCert, "tls-require-client-cert", false, "refuse connections without a verified client certificate")
	fl.BoolVar(&f.plaintext, "insecure-plaintext", false, "serve plain HTTP: local development only, never with real card data")
	fl.StringVar(&f.txnID, "transactional-id", "pcistream-gateway-"+host, "prefix of the producers' transactional ids: stable per instance, unique per live instance")
	fl.IntVar(&f.producers, "producers", 1, "transactional producers; requests arriving while one commits form its next transaction (more: lower latency at low load, more CPU per request)")
	fl.IntVar(&f.maxInFlight, "max-in-flight", 1024, "requests served at once; beyond it 503")
	fl.DurationVar(&f.commitTimeout, "commit-timeout", 2*time.Second, "longest wait for Kafka before answering 503")
	fl.DurationVar(&f.window, "idempotency-window", gateway.DefaultIdempotencyWindow, "how long an Idempotency-Key is remembered")
	fl.StringVar(&f.stateDir, "state-dir", "", "directory of the Idempotency-Key state (Pebble), kept across restarts (default: a temporary directory, fully restored from the topic at each start)")
	fl.Int64Var(&f.stateCache, "state-cache-bytes", 64<<20, "block cache of the Idempotency-Key state: with its memtables, the state's memory bound whatever the key count")
	fl.Int64Var(&f.stateFilter, "state-filter-bytes", gateway.DefaultStateFilterBytes, "memory for the in-memory filter that answers new Idempotency-Keys without a disk read (10 bits a key in the window; past it lookups read the store; -1: off)")
	fl.StringVar(&f.jwtKeyFile, "jwt-key", "", "file with the PEM public key (or an HMAC secret of 32+ bytes) that signs bearer tokens")
	fl.StringVar(&f.jwtIssuer, "jwt-issuer", "", "required iss claim of bearer tokens")
	fl.StringVar(&f.jwtAudience, "jwt-audience", "", "required aud claim of bearer tokens")
	fl.Float64Var(&f.detokRate, "detokenize-rate", 1, "detokenizations per second per caller")
	fl.IntVar(&f.detokBurst, "detokenize-burst", 5, "detokenize burst per caller")
	fl.StringVar(&f.otlpEndpoint, "otlp-endpoint", "", "export OpenTelemetry traces over OTLP/HTTP to host:port (empty: tracing off)")
	fl.BoolVar(&f.otlpInsecure, "otlp-insecure", false, "OTLP over plain HTTP")
	fl.Float64Var(&f.traceRatio, "trace-ratio", 0.01, "fraction of requests traced when --otlp-endpoint is set")
	fl.BoolVar(&f.noopRoute, "bench-noop-route", false, "also serve POST /v1/noop (benchmark baseline)")
	fl.MarkHidden("bench-noop-route") //nolint:errcheck // the flag exists
	fl.StringVar(&f.cpuProfile, "bench-cpuprofile", "", "write a Go CPU profile of the whole run to this file (benchmarks)")
	fl.MarkHidden("bench-cpuprofile") //nolint:errcheck // the flag exists
	fl.StringVar(&f.memProfile, "bench-memprofile", "", "write a Go allocation profile of the whole run to this file at exit (benchmarks)")
	fl.MarkHidden("bench-memprofile") //nolint:errcheck // the flag exists
	fl.StringVar(&f.traceFile, "bench-trace", "", "write a Go execution trace of the run's last seconds to this file at exit (benchmarks; `go tool trace`)")
	fl.MarkHidden("bench-trace") //nolint:errcheck // the flag exists
	return cmd
}

// gatewayGCPercent is the gateway's GOGC unless the environment sets one.
// Its Go heap is small and short-lived (about 5 MB live under the
// benchmark: request buffers and Kafka batches; the Idempotency-Key state
// lives in Pebble's manually managed memory), so Go's default of 100 ran a
// collection every ~6 MB allocated, five times a second at 4,000 payments a
// second, about 7% of the process's CPU. 400 lets the heap grow to five
// times the live data (tens of MB) between collections.
const gatewayGCPercent = 400

func runGateway(ctx context.Context, cfg *config.Config, f *gatewayFlags) error {
	log := newLogger(cfg, os.Stderr)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gatewayGCPercent)
	}
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return fmt.Errorf("gateway: --bench-cpuprofile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("gateway: --bench-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if f.traceFile != "" {
		stop, err := recordTrace(f.traceFile)
		if err != nil {
			return fmt.Errorf("gateway: --bench-trace: %w", err)
		}
		defer stop(log)
	}
	if f.memProfile != "" {
		// Every allocation since the start (alloc_space, alloc_objects),
		// written once the server stopped.
		defer writeAllocProfile(f.memProfile, log)
	}
	var tc *tls.Config
	if !f.plaintext {
		var err error
		if tc, err = gateway.ServerTLS(f.tls); err != nil {
			return err
		}
	} else if f.tls.CertFile != "" {
		return errors.New("gateway: --insecure-plaintext and --tls-cert exclude each other")
	}
	var ac gateway.AuthConfig
	if f.jwtKeyFile != "" {
		b, err := os.ReadFile(f.jwtKeyFile)
		if err != nil {
			return fmt.Errorf("gateway: reading --jwt-key: %w", err)
		}
		ac = gateway.AuthConfig{JWTKey: b, Issuer: f.jwtIssuer, Audience: f.jwtAudience}
	}
	auth, err := gateway.NewAuthenticator(ac)
	if err != nil {
		return err
	}
	kr, vault, err := openKeyring(ctx, cfg, &f.kms)
	if err != nil {
		return err
	}
	clientOpts, err := kafkax.Opts(cfg.Kafka)
	if err != nil {
		return fmt.Errorf("kafka options: %w", err)
	}
	serde, err := schemas.Open(ctx, cfg.Registry, cfg.Topics)
	if err != nil {
		return err
	}
	opts := []gateway.Opt{gateway.Auth(auth), gateway.MaxInFlight(f.maxInFlight), gateway.CommitTimeout(f.commitTimeout),
		gateway.DetokenizeRate(f.detokRate, f.detokBurst)}
	if f.noopRoute {
		opts = append(opts, gateway.NoopRoute())
	}
	if f.otlpEndpoint != "" {
		tr, shutdown, err := gateway.NewOTLPTracer(ctx, f.otlpEndpoint, f.otlpInsecure, f.traceRatio)
		if err != nil {
			return err
		}
		defer shutdown(context.Background()) //nolint:errcheck // flush on the way out
		opts = append(opts, gateway.Tracer(tr))
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("gateway: listen on %s: %w (set --listen to a free address)", f.listen, err)
	}
	reg := telemetry.NewRegistry()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srvErr := make(chan error, 1)
	go func() { srvErr <- reg.Serve(ctx, cfg.MetricsAddr, log) }()
	svc, err := gateway.Start(ctx, gateway.ServiceConfig{
		ClientOpts: clientOpts, Keyring: kr, Vault: vault, Serde: serde, Topics: cfg.Topics,
		TransactionalID: f.txnID, Producers: f.producers, Window: f.window,
		StateDir: f.stateDir, StateCacheBytes: f.stateCache, StateFilterBytes: f.stateFilter,
		Listener: ln, TLS: tc, Logger: log, Registry: reg, Opts: opts,
	})
	if err != nil {
		ln.Close()
		return err
	}
	err = svc.Wait()
	cancel()
	return errors.Join(err, <-srvErr)
}

// recordTrace starts a flight recorder; stop writes its window (the run's
// last few seconds: a whole run's trace would be gigabytes) to path.
func recordTrace(path string) (stop func(*slog.Logger), err error) {
	fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: 5 * time.Second, MaxBytes: 512 << 20})
	if err := fr.Start(); err != nil {
		return nil, err
	}
	return func(log *slog.Logger) {
		defer fr.Stop()
		tf, err := os.Create(path)
		if err == nil {
			_, err = fr.WriteTo(tf)
			err = errors.Join(err, tf.Close())
		}
		if err != nil {
			log.Warn("--bench-trace", "err", err)
		}
	}, nil
}

// writeAllocProfile writes the allocs profile to path (--bench-memprofile).
func writeAllocProfile(path string, log *slog.Logger) {
	pf, err := os.Create(path)
	if err != nil {
		log.Warn("--bench-memprofile", "err", err)
		return
	}
	defer pf.Close()
	if err := pprof.Lookup("allocs").WriteTo(pf, 0); err != nil {
		log.Warn("--bench-memprofile", "err", err)
	}
}
