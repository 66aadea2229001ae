// Package gateway is pcistream's HTTP edge for producers that are not Kafka
// clients (payment pages, PSP webhooks, mobile back ends):
//
//   - POST /v1/payments takes a JSON card payload, validates it with the
//     tokenizer's own checks, and writes the raw payment event (Avro, CVV
//     removed) to payments.raw, keyed by idempotency key so the tokenizer's
//     dedup applies. It answers 202 with the context id, brand and last four
//     only after the Kafka transaction holding the event committed.
//   - Idempotency-Key: a retry within the window gets the first response and
//     writes nothing; the same key with another body is 409. The key's entry
//     is written in the same transaction as the event (see Committer).
//   - POST /v1/tokenize returns a token once its vault entry is committed.
//   - POST /v1/detokenize reveals a PAN to callers holding the detokenize
//     role, rate limited, after the tokenizer's Detokenizer audited it.
//
// It fails closed: a bounded in-flight budget and a bounded commit deadline
// answer 503 with Retry-After, never a 2xx for a payment not in Kafka.
// Bodies, PANs and CVVs never reach a log line, a metric label, an error
// response or a trace attribute.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/time/rate"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/logmask"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/processors/tokenizer"
	"github.com/pcistream/pcistream/schemas"
)

// Name is the gateway's actor name in audit events and its metrics name.
const Name = "gateway"

// Route names, the only values of the route label.
const (
	RoutePayments   = "payments"
	RouteTokenize   = "tokenize"
	RouteDetokenize = "detokenize"
	RouteNoop       = "noop"
)

// Opt configures a Gateway.
type Opt func(*cfg)

type cfg struct {
	topics        config.Topics
	logger        *slog.Logger
	reg           prometheus.Registerer
	tracer        trace.Tracer
	traced        bool
	maxInFlight   int
	commitTimeout time.Duration
	retryAfter    time.Duration
	maxBody       int64
	auth          *Authenticator
	detokRate     rate.Limit
	detokBurst    int
	noop          bool
	now           func() time.Time
}

// Topics sets the topic names (default config.DefaultTopics()).
func Topics(t config.Topics) Opt { return func(c *cfg) { c.topics = t } }

// Logger sets the logger. The gateway logs routes, statuses, durations,
// context ids and reason codes, never bodies; a logger without the
// PAN-masking handler (internal/logmask) gets it added.
func Logger(l *slog.Logger) Opt { return func(c *cfg) { c.logger = l } }

// Registerer sets where metrics are registered (default none).
func Registerer(r prometheus.Registerer) Opt { return func(c *cfg) { c.reg = r } }

// Tracer sets the OpenTelemetry tracer (default a no-op tracer).
func Tracer(t trace.Tracer) Opt { return func(c *cfg) { c.tracer, c.traced = t, t != nil } }

// MaxInFlight bounds the requests served at once (default 1024); beyond it
// requests get 503 at once.
func MaxInFlight(n int) Opt { return func(c *cfg) { c.maxInFlight = n } }

// CommitTimeout bounds how long a request waits for its Kafka transaction
// (default 2s); then it gets 503.
func CommitTimeout(d time.Duration) Opt { return func(c *cfg) { c.commitTimeout = d } }

// RetryAfter is the Retry-After of 503 answers (default 1s).
func RetryAfter(d time.Duration) Opt { return func(c *cfg) { c.retryAfter = d } }

// MaxBodyBytes bounds request bodies (default 16 KiB).
func MaxBodyBytes(n int64) Opt { return func(c *cfg) { c.maxBody = n } }

// Auth sets the authenticator of the tokenize and detokenize APIs; without
// one both answer 401.
func Auth(a *Authenticator) Opt { return func(c *cfg) { c.auth = a } }

// DetokenizeRate limits detokenizations per caller (default 1/s, burst 5).
func DetokenizeRate(perSecond float64, burst int) Opt {
	return func(c *cfg) { c.detokRate, c.detokBurst = rate.Limit(perSecond), burst }
}

// NoopRoute adds POST /v1/noop, which reads the body and answers 202 behind
// the same middleware: the baseline of the benchmark.
func NoopRoute() Opt { return func(c *cfg) { c.noop = true } }

// Clock sets the time source (tests).
func Clock(now func() time.Time) Opt { return func(c *cfg) { c.now = now } }

// Detokenizer reveals PANs; *tokenizer.Detokenizer is the implementation.
type Detokenizer interface {
	Detokenize(ctx context.Context, req tokenizer.DetokenizeRequest) ([]byte, error)
}

// Gateway serves the HTTP API.
type Gateway struct {
	cfg    cfg
	kr     *token.Keyring
	vault  *token.Vault
	serde  *schemas.Serde
	commit Committer
	idem   IdemStore
	detok  Detokenizer
	det    *pan.Detector
	m      *metrics
	sem    chan struct{}
	keys   *keyLocks
	limits *limiters
	bodies bodyPool
	// deadlines are the payment route's commit deadlines.
	deadlines *deadlines
}

// New returns a Gateway writing through commit and remembering
// Idempotency-Keys in idem. detok may be nil (then /v1/detokenize is 503).
func New(kr *token.Keyring, vault *token.Vault, serde *schemas.Serde, commit Committer, idem IdemStore, detok Detokenizer, opts ...Opt) (*Gateway, error) {
	c := cfg{
		topics: config.DefaultTopics(), logger: slog.Default(), tracer: noop.NewTracerProvider().Tracer(Name),
		maxInFlight: 1024, commitTimeout: 2 * time.Second, retryAfter: time.Second, maxBody: 16 << 10,
		detokRate: 1, detokBurst: 5, now: time.Now,
	}
	for _, o := range opts {
		o(&c)
	}
	// Request logging always goes through the PAN-masking handler, even if
	// the caller passed a plain logger: the gateway logs no card data, and
	// this makes sure a mistake could not either.
	if _, ok := c.logger.Handler().(*logmask.Handler); !ok {
		c.logger = slog.New(logmask.NewHandler(c.logger.Handler(), nil))
	}
	if kr == nil || vault == nil || serde == nil || commit == nil || idem == nil {
		return nil, errors.New("gateway: keyring, vault, serde, committer and idempotency store are required")
	}
	if c.topics.GatewayIdempotency == "" {
		return nil, errors.New("gateway: no idempotency topic configured (--topic-gateway-idempotency)")
	}
	return &Gateway{
		cfg: c, kr: kr, vault: vault, serde: serde, commit: commit, idem: idem, detok: detok,
		det: pan.New(), m: newMetrics(c.reg), sem: make(chan struct{}, c.maxInFlight),
		keys: newKeyLocks(), limits: newLimiters(c.detokRate, c.detokBurst), deadlines: newDeadlines(c.commitTimeout),
	}, nil
}

// Ready reports whether the gateway can accept payments: its idempotency
// state is loaded.
func (g *Gateway) Ready() error { return g.idem.Ready() }

// Handler returns the API's routes behind the gateway's middleware.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/payments", g.wrap(RoutePayments, g.payments))
	mux.Handle("POST /v1/tokenize", g.wrap(RouteTokenize, g.tokenize))
	mux.Handle("POST /v1/detokenize", g.wrap(RouteDetokenize, g.detokenize))
	if g.cfg.noop {
		mux.Handle("POST /v1/noop", g.wrap(RouteNoop, g.noop))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		g.m.requests.WithLabelValues("other", "404").Inc()
		writeJSON(w, http.StatusNotFound, errBody(&apiError{Code: "not_found", Message: "no such route"}))
	})
	return mux
}

// result is what a handler tells the middleware about its answer.
type result struct {
	status    int
	contextID string
	reason    string
}

// handler serves one route and returns what it answered.
type handler func(w http.ResponseWriter, r *http.Request) result

// wrap applies the in-flight budget, metrics, tracing and the request log.
// What does not change per request (span name and attributes, the latency
// observer) is made once here; without a tracer no span is started (the
// no-op tracer would still cost a context and a request copy per request).
func (g *Gateway) wrap(route string, h handler) http.Handler {
	spanName := "POST /v1/" + route
	routeAttr := attribute.String("http.route", "/v1/"+route)
	var isolation prometheus.Observer
	if route == RoutePayments || route == RouteTokenize {
		isolation = g.m.isolation.WithLabelValues(route)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var span trace.Span
		if g.cfg.traced {
			var ctx context.Context
			ctx, span = g.cfg.tracer.Start(r.Context(), spanName, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(routeAttr))
			defer span.End()
			r = r.WithContext(ctx)
		}
		var res result
		select {
		case g.sem <- struct{}{}:
			g.m.inFlight.Inc()
			res = h(w, r)
			g.m.inFlight.Dec()
			<-g.sem
		default:
			res = g.unavailable(w, "over_budget", "too many requests in flight")
		}
		d := time.Since(start)
		g.m.requests.WithLabelValues(route, statusLabel(res.status)).Inc()
		if isolation != nil {
			isolation.Observe(d.Seconds())
		}
		if res.reason != "" {
			g.m.rejected.WithLabelValues(res.reason).Inc()
		}
		if span != nil {
			endSpan(span, res)
		}
		level := slog.LevelDebug
		if res.status >= 500 {
			level = slog.LevelWarn
		}
		if g.cfg.logger.Enabled(r.Context(), level) {
			g.cfg.logger.Log(r.Context(), level, "request", "route", route, "status", res.status,
				"duration", d, "context_id", res.contextID, "reason", res.reason)
		}
	})
}

// endSpan records the answer on the request's span.
func endSpan(span trace.Span, res result) {
	span.SetAttributes(attribute.Int("http.response.status_code", res.status))
	if res.contextID != "" {
		span.SetAttributes(attribute.String("pcistream.context_id", res.contextID))
	}
	if res.status >= 500 {
		span.SetStatus(codes.Error, res.reason)
	}
}

// statusLabel is strconv.Itoa(status) without an allocation for the
// statuses the gateway answers.
func statusLabel(status int) string {
	switch status {
	case http.StatusOK:
		return "200"
	case http.StatusAccepted:
		return "202"
	case http.StatusBadRequest:
		return "400"
	case http.StatusConflict:
		return "409"
	case http.StatusUnprocessableEntity:
		return "422"
	case http.StatusServiceUnavailable:
		return "503"
	}
	return strconv.Itoa(status)
}

func (g *Gateway) noop(w http.ResponseWriter, r *http.Request) result {
	var sink [4096]byte
	for {
		if _, err := r.Body.Read(sink[:]); err != nil {
			break
		}
	}
	clear(sink[:])
	writeJSON(w, http.StatusAccepted, []byte(`{"status":"accepted"}`))
	return result{status: http.StatusAccepted}
}

// unavailable answers 503 with Retry-After: the client retries later with
// the same Idempotency-Key.
func (g *Gateway) unavailable(w http.ResponseWriter, reason, msg string) result {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(g.cfg.retryAfter.Round(time.Second)/time.Second))))
	writeJSON(w, http.StatusServiceUnavailable, errBody(&apiError{Code: reason, Message: msg}))
	return result{status: http.StatusServiceUnavailable, reason: reason}
}

// fail answers an apiError.
func (g *Gateway) fail(w http.ResponseWriter, e *apiError) result {
	writeJSON(w, e.Status, errBody(e))
	return result{status: e.Status, reason: e.Code}
}

func errBody(e *apiError) []byte {
	b, _ := json.Marshal(struct {
		Error *apiError `json:"error"`
	}{e})
	return b
}

// Header values every JSON answer carries, shared by all of them (net/http
// only reads them): setting them this way allocates nothing.
var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
)

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	w.WriteHeader(status)
	w.Write(body) //nolint:errcheck // the client went away; nothing to do
}
