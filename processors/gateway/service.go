package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/telemetry"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/processors/tokenizer"
	"github.com/pcistream/pcistream/schemas"
)

// ServiceConfig is everything a running gateway needs.
type ServiceConfig struct {
	// ClientOpts connect to Kafka (kafkax.Opts).
	ClientOpts []kgo.Opt
	Keyring    *token.Keyring
	Vault      *token.Vault
	Serde      *schemas.Serde
	Topics     config.Topics
	// TransactionalID prefixes the producers' transactional ids: stable
	// per instance across restarts, unique per live instance.
	TransactionalID string
	// Producers, MaxBatch: see TxnCommitterConfig.
	Producers, MaxBatch int
	// Window is the Idempotency-Key window (default 24h).
	Window time.Duration
	// StateDir is the idempotency state's Pebble directory, kept across
	// restarts (empty: a temporary one, fully restored at each start).
	StateDir string
	// StateCacheBytes bounds the state's block cache (default 64 MiB).
	StateCacheBytes int64
	// StateFilterBytes bounds the state's key filter (see
	// StateStoreConfig.FilterBytes).
	StateFilterBytes int64
	// Listener is where the API is served; TLS nil means plain HTTP (the
	// command allows that only with an explicit development flag).
	Listener net.Listener
	TLS      *tls.Config
	Logger   *slog.Logger
	// Registry receives the metrics and the readiness check; may be nil.
	Registry *telemetry.Registry
	// Opts are passed to New after the service's own.
	Opts []Opt
}

// Service is a running gateway: idempotency store, committer and server.
type Service struct {
	Gateway *Gateway
	Store   *StateStore
	Commit  *TxnCommitter
	addr    string
	done    chan error
}

// Start loads the idempotency state, starts the producers and serves the API
// until ctx is done; Wait returns when everything stopped.
func Start(ctx context.Context, c ServiceConfig) (*Service, error) {
	if c.Listener == nil {
		return nil, errors.New("gateway: no listener")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	store, err := OpenStateStore(StateStoreConfig{ClientOpts: c.ClientOpts, Topic: c.Topics.GatewayIdempotency,
		Dir: c.StateDir, Window: c.Window, CacheBytes: c.StateCacheBytes, FilterBytes: c.StateFilterBytes, Logger: c.Logger})
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			store.Close()
		}
	}()
	gopts := []Opt{Topics(c.Topics), Logger(c.Logger)}
	var m *metrics
	if c.Registry != nil {
		gopts = append(gopts, Registerer(c.Registry))
		m = newMetrics(c.Registry)
	} else {
		m = newMetrics(nil)
	}
	commit, err := NewTxnCommitter(TxnCommitterConfig{
		ClientOpts: c.ClientOpts, TransactionalID: c.TransactionalID, Producers: c.Producers, MaxBatch: c.MaxBatch,
		Logger: c.Logger, OnCommitted: store.Committed, Keys: store, Observe: func(d time.Duration, ok bool) {
			outcome := "committed"
			if !ok {
				outcome = "failed"
			}
			m.produce.WithLabelValues(outcome).Observe(d.Seconds())
		},
		ObservePhase:    func(phase string, d time.Duration) { m.phase.WithLabelValues(phase).Observe(d.Seconds()) },
		KeyCheckAborted: m.checkAborts.Inc,
	})
	if err != nil {
		return nil, err
	}
	detok := tokenizer.NewDetokenizer(c.Vault, c.Serde, c.Topics, c.ClientOpts)
	g, err := New(c.Keyring, c.Vault, c.Serde, commit, store, detok, append(gopts, c.Opts...)...)
	if err != nil {
		return nil, err
	}
	if c.Registry != nil {
		c.Registry.AddReadiness(Name, func() error {
			return errors.Join(store.Ready(), commit.Ready())
		})
	}
	s := &Service{Gateway: g, Store: store, Commit: commit, addr: c.Listener.Addr().String(), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(ctx)
	storeErr := make(chan error, 1)
	go func() { storeErr <- store.Run(ctx) }()
	if err := store.WaitReady(ctx); err != nil {
		cancel()
		<-storeErr
		return nil, fmt.Errorf("gateway: %w", err)
	}
	commitErr := make(chan error, 1)
	go func() { commitErr <- commit.Run(ctx) }()
	started = true
	go func() {
		err := Serve(ctx, c.Listener, g.Handler(), c.TLS, g.cfg.logger)
		cancel()
		err = errors.Join(err, <-commitErr, <-storeErr)
		s.done <- errors.Join(err, store.Close())
	}()
	c.Logger.Info("gateway serving", "addr", s.addr, "tls", c.TLS != nil)
	return s, nil
}

// Addr is the address the API is served on.
func (s *Service) Addr() string { return s.addr }

// Wait blocks until the service stopped and returns its error.
func (s *Service) Wait() error { return <-s.done }
