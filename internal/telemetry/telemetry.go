// Package telemetry serves pcistream's Prometheus metrics and health
// endpoints: /metrics, /healthz (the process is alive) and /readyz (every
// registered readiness check passes).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry bundles a Prometheus registry with readiness probes.
type Registry struct {
	*prometheus.Registry
	mu      sync.Mutex
	probes  map[string]Probe
	timeout time.Duration
}

// Probe is one named readiness check: nil error means ready, and detail
// says what was found (e.g. "member of group g, 3 partitions"). A probe
// that calls a remote service must honour ctx: /readyz gives every probe
// ProbeTimeout.
type Probe func(ctx context.Context) (detail string, err error)

// ProbeTimeout is the default bound on each probe of one /readyz request: a
// hung dependency makes the worker not ready, never makes the endpoint hang.
const ProbeTimeout = 5 * time.Second

// SetProbeTimeout changes the bound on each probe (default ProbeTimeout).
func (r *Registry) SetProbeTimeout(d time.Duration) {
	r.mu.Lock()
	r.timeout = d
	r.mu.Unlock()
}

// NewRegistry returns a registry with the Go and process collectors.
func NewRegistry() *Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Registry{Registry: r, probes: map[string]Probe{}, timeout: ProbeTimeout}
}

// AddReadiness registers a named check for /readyz; nil means ready.
func (r *Registry) AddReadiness(name string, check func() error) {
	r.AddProbe(name, func(context.Context) (string, error) { return "", check() })
}

// AddStatus registers a named check that also describes what it found.
func (r *Registry) AddStatus(name string, status func() (string, error)) {
	r.AddProbe(name, func(context.Context) (string, error) { return status() })
}

// AddProbe registers a named readiness probe; a later one with the same
// name replaces it.
func (r *Registry) AddProbe(name string, p Probe) {
	r.mu.Lock()
	r.probes[name] = p
	r.mu.Unlock()
}

// ProbeResult is the outcome of one probe.
type ProbeResult struct {
	Name   string
	Detail string
	Err    error
}

// Probe runs every probe, each with ProbeTimeout, in name order.
func (r *Registry) Probe(ctx context.Context) []ProbeResult {
	r.mu.Lock()
	names := make([]string, 0, len(r.probes))
	for n := range r.probes {
		names = append(names, n)
	}
	sort.Strings(names)
	probes := make([]Probe, len(names))
	for i, n := range names {
		probes[i] = r.probes[n]
	}
	timeout := r.timeout
	r.mu.Unlock()
	out := make([]ProbeResult, len(names))
	for i, p := range probes {
		out[i] = ProbeResult{Name: names[i]}
		out[i].Detail, out[i].Err = runProbe(ctx, p, timeout)
	}
	return out
}

// runProbe runs p with ProbeTimeout, and reports a probe that ignores its
// context as timed out rather than waiting for it.
func runProbe(ctx context.Context, p Probe, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type res struct {
		d string
		e error
	}
	ch := make(chan res, 1)
	go func() {
		d, e := p(ctx)
		ch <- res{d, e}
	}()
	select {
	case r := <-ch:
		return r.d, r.e
	case <-ctx.Done():
		return "", fmt.Errorf("probe did not answer within %s", timeout)
	}
}

// Ready runs every readiness probe and joins their errors.
func (r *Registry) Ready() error {
	var errs []error
	for _, pr := range r.Probe(context.Background()) {
		if pr.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", pr.Name, pr.Err))
		}
	}
	return errors.Join(errs...)
}

// Handler returns the HTTP handler for /metrics, /healthz and /readyz.
// /readyz answers 200 only when every probe passes; its body has one line
// per probe ("ok name: detail" or "FAIL name: reason").
func (r *Registry) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.Registry, promhttp.HandlerOpts{Registry: r.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n")) //nolint:errcheck
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, req *http.Request) {
		results := r.Probe(req.Context())
		var b strings.Builder
		ready := len(results) > 0
		for _, pr := range results {
			if pr.Err != nil {
				ready = false
				fmt.Fprintf(&b, "FAIL %s: %v\n", pr.Name, oneLine(pr.Err.Error()))
				continue
			}
			fmt.Fprintf(&b, "ok %s", pr.Name)
			if pr.Detail != "" {
				fmt.Fprintf(&b, ": %s", oneLine(pr.Detail))
			}
			b.WriteString("\n")
		}
		if len(results) == 0 {
			b.WriteString("FAIL no readiness probes registered\n")
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready\n" + b.String())) //nolint:errcheck
			return
		}
		w.Write([]byte("ready\n" + b.String())) //nolint:errcheck
	})
	return mux
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// Serve serves the handler on addr until ctx is done. An empty addr does
// nothing and returns nil once ctx is done.
func (r *Registry) Serve(ctx context.Context, addr string, log *slog.Logger) error {
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics server: listen on %s: %w (set --metrics-addr to a free address, or empty to disable)", addr, err)
	}
	srv := &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx) //nolint:errcheck
	}()
	if log != nil {
		log.Info("serving metrics and health", "addr", ln.Addr().String())
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}

// Register registers c with reg, returning the collector already registered
// under the same description when there is one. Several processors in one
// process (the demo) share metric families this way.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("telemetry: register metric: %v", err))
	}
	return c
}
