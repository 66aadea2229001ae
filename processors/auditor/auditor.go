// Package auditor archives the audit.events topic into an immutable,
// hash-chained trail in S3 (PCI DSS v4.0 requirement 10.5).
//
// It is not a Kafka-to-Kafka transform, so it does not use the shared
// transactional loop: a plain consumer group reads read_committed, batches
// records per partition (by count, bytes and age), appends each batch to the
// partition's chain (internal/chain) and only then commits the offsets. S3 is
// the source of truth for the position: on every assignment the consumer
// seeks to the chain head's last offset + 1 whatever the committed offsets
// say, and deterministic keys plus conditional puts make any re-attempt land
// on, and adopt, what an earlier attempt already stored. While S3 is
// unreachable the auditor stops committing, retries with backoff and reports
// not ready; Kafka keeps the data.
package auditor

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/schemas"
)

// EventDecoder turns a record value into the event (anything encoding/json
// can marshal) and its event time in milliseconds (0 if unknown).
type EventDecoder func(value []byte) (event any, timeMs int64, err error)

// ErrTransient marks a decode error that says nothing about the record (the
// schema registry is unreachable): the auditor retries instead of archiving
// the record as undecodable.
var ErrTransient = errors.New("transient decode error")

// SerdeDecoder decodes Confluent wire-format Avro AuditEvents with the
// schemas serde. Registry outages are reported as ErrTransient.
func SerdeDecoder(ctx context.Context, s *schemas.Serde) EventDecoder {
	return func(value []byte) (any, int64, error) {
		var ev schemas.AuditEvent
		if err := s.Decode(ctx, value, &ev); err != nil {
			if schemas.IsUnavailable(err) {
				return nil, 0, fmt.Errorf("%w: %w", ErrTransient, err)
			}
			return nil, 0, err
		}
		return ev, ev.Time, nil
	}
}

// JSONDecoder decodes JSON audit events (the documented alternative to Avro);
// the event time is read from a numeric "time_ms" field when present.
func JSONDecoder(value []byte) (any, int64, error) {
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return nil, 0, fmt.Errorf("not a JSON object: %w", err)
	}
	var t int64
	if n, ok := v["time_ms"].(json.Number); ok {
		t, _ = n.Int64()
	}
	return v, t, nil
}

// Opt configures an Auditor.
type Opt func(*cfg)

type cfg struct {
	topic, group    string
	clientOpts      []kgo.Opt
	maxRecords      int
	maxBytes        int
	maxAge          time.Duration
	checkpointEvery time.Duration
	signer          chain.Signer
	decode          EventDecoder
	policy          pan.Policy
	logger          *slog.Logger
	reg             prometheus.Registerer
	writer          string
	minBackoff      time.Duration
	maxBackoff      time.Duration
	trusted         []ed25519.PublicKey
	anchorTopic     string
	alarmHold       time.Duration
}

// Topic is the audit events topic (default audit.events).
func Topic(t string) Opt { return func(c *cfg) { c.topic = t } }

// Group is the consumer group (default pcistream-auditor).
func Group(g string) Opt { return func(c *cfg) { c.group = g } }

// ClientOpts are the kgo options that reach the cluster (brokers, TLS, SASL).
func ClientOpts(o ...kgo.Opt) Opt { return func(c *cfg) { c.clientOpts = append(c.clientOpts, o...) } }

// BatchLimits bounds a batch by record count, uncompressed bytes and age;
// a batch is written when any limit is reached.
func BatchLimits(records, bytes int, age time.Duration) Opt {
	return func(c *cfg) { c.maxRecords, c.maxBytes, c.maxAge = records, bytes, age }
}

// Checkpoints signs all partition heads with s every interval (and at
// shutdown). Without a signer no checkpoints are written.
func Checkpoints(s chain.Signer, every time.Duration) Opt {
	return func(c *cfg) { c.signer, c.checkpointEvery = s, every }
}

// TrustedKeys are earlier signing keys (before a rotation) whose manifests
// and checkpoints the auditor still accepts when it resumes; its own key is
// always trusted.
func TrustedKeys(pubs ...ed25519.PublicKey) Opt {
	return func(c *cfg) { c.trusted = append(c.trusted, pubs...) }
}

// AnchorTopic is the compacted Kafka topic every checkpoint is also written
// to (a trust domain apart from the bucket). On start the auditor checks the
// bucket still holds the newest checkpoint anchored there.
func AnchorTopic(t string) Opt { return func(c *cfg) { c.anchorTopic = t } }

// AlarmHold is how long Run keeps the process up (not ready, metrics
// served) after a tamper alarm before it returns, so the alarm metric is
// scraped before the process exits (default one minute).
func AlarmHold(d time.Duration) Opt { return func(c *cfg) { c.alarmHold = d } }

// Decoder sets how record values are decoded (default JSONDecoder; the
// command wires the Avro serde).
func Decoder(d EventDecoder) Opt { return func(c *cfg) { c.decode = d } }

// MaskPolicy is how PAN-like content in events is masked (default last4).
func MaskPolicy(p pan.Policy) Opt { return func(c *cfg) { c.policy = p } }

// Logger sets the logger (it should be the PAN-masking handler).
func Logger(l *slog.Logger) Opt { return func(c *cfg) { c.logger = l } }

// Registerer registers the auditor's metrics.
func Registerer(r prometheus.Registerer) Opt { return func(c *cfg) { c.reg = r } }

// WriterName is recorded in each manifest (host or pod name).
func WriterName(n string) Opt { return func(c *cfg) { c.writer = n } }

// Backoff bounds the retry delay while S3 fails.
func Backoff(minDelay, maxDelay time.Duration) Opt {
	return func(c *cfg) { c.minBackoff, c.maxBackoff = minDelay, maxDelay }
}

// Auditor consumes audit events and appends them to the chain in a Store.
type Auditor struct {
	cfg   cfg
	store chain.Store
	det   *pan.Detector
	log   *slog.Logger
	m     metrics

	mu       sync.Mutex
	writers  map[int32]*chain.PartitionWriter
	batches  map[int32]*batch
	notReady error
	joined   bool
	cl       *kgo.Client
	fatal    error // a tamper alarm: the auditor stops

	// anchored is the newest checkpoint known to be in the anchor topic;
	// unanchored a written checkpoint not yet produced there.
	anchored   []byte
	unanchored []byte
}

type batch struct {
	recs    []chain.Record
	bytes   int
	started time.Time
	epoch   int32
}

type metrics struct {
	records, batches, failures, masked, decodeErrors, checkpoints, tamper prometheus.Counter
	writeSeconds                                                          *prometheus.HistogramVec
	head, lastOffset                                                      *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		records:      prometheus.NewCounter(prometheus.CounterOpts{Name: "pcistream_audit_records_total", Help: "Audit records written to the chain."}),
		batches:      prometheus.NewCounter(prometheus.CounterOpts{Name: "pcistream_audit_batches_total", Help: "Audit batches (object + manifest) written."}),
		failures:     prometheus.NewCounter(prometheus.CounterOpts{Name: "pcistream_audit_write_failures_total", Help: "Failed attempts to write audit batches or checkpoints to S3."}),
		masked:       prometheus.NewCounter(prometheus.CounterOpts{Name: "pcistream_audit_pans_masked_total", Help: "PAN-like values masked in audit events before archiving."}),
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "pcistream_audit_decode_errors_total", Help: "Audit records whose value could not be decoded (archived masked, with the error)."}),
		checkpoints:  prometheus.NewCounter(prometheus.CounterOpts{Name: "pcistream_audit_checkpoints_total", Help: "Signed checkpoints written."}),
		tamper:       prometheus.NewCounter(prometheus.CounterOpts{Name: "pcistream_audit_tamper_alarms_total", Help: "Tamper alarms: the chain head, a checkpoint or an anchor failed authentication or disagreed with Kafka; the auditor stopped."}),
		writeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pcistream_s3_write_seconds", Help: "Latency of durable S3 writes: a batch (object-locked PUT + manifest PUT) or a checkpoint.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14)}, []string{"op"}),
		head:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pcistream_audit_chain_head", Help: "Sequence number of the chain head manifest."}, []string{"partition"}),
		lastOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pcistream_audit_chain_last_offset", Help: "Last Kafka offset archived in the chain."}, []string{"partition"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.records, m.batches, m.failures, m.masked, m.decodeErrors, m.checkpoints, m.tamper, m.writeSeconds, m.head, m.lastOffset} {
			reg.MustRegister(c)
		}
	}
	return m
}

// New returns an auditor writing to store. Call Run to start it.
func New(store chain.Store, opts ...Opt) (*Auditor, error) {
	c := cfg{
		topic:      "audit.events",
		group:      "pcistream-auditor",
		maxRecords: 10000,
		maxBytes:   8 << 20,
		maxAge:     5 * time.Second,
		decode:     JSONDecoder,
		policy:     pan.Last4,
		minBackoff: 100 * time.Millisecond,
		maxBackoff: 10 * time.Second,
		alarmHold:  time.Minute,
	}
	for _, o := range opts {
		o(&c)
	}
	if store == nil {
		return nil, errors.New("auditor: no store")
	}
	if len(c.clientOpts) == 0 {
		return nil, errors.New("auditor: no Kafka client options (brokers)")
	}
	if c.signer == nil {
		return nil, errors.New("auditor: no signing key: manifests and checkpoints must be signed (Checkpoints option; 'pcistream audit keygen')")
	}
	if c.maxRecords <= 0 || c.maxBytes <= 0 || c.maxAge <= 0 {
		return nil, errors.New("auditor: batch limits must be positive")
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.checkpointEvery <= 0 {
		c.checkpointEvery = time.Minute
	}
	return &Auditor{
		cfg:      c,
		store:    store,
		det:      pan.New(),
		log:      c.logger.With("processor", "auditor"),
		m:        newMetrics(c.reg),
		writers:  map[int32]*chain.PartitionWriter{},
		batches:  map[int32]*batch{},
		notReady: errors.New("starting"),
	}, nil
}

// Ready returns nil while the auditor is in its group and S3 writes succeed;
// otherwise the reason it is not ready (for /readyz).
func (a *Auditor) Ready() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.notReady != nil {
		return a.notReady
	}
	if !a.joined {
		if a.cl != nil {
			if m, gen := a.cl.GroupMetadata(); m != "" && gen >= 0 {
				return nil // a member whose partitions the others hold
			}
		}
		return fmt.Errorf("not yet joined consumer group %s", a.cfg.group)
	}
	return nil
}

// Status is Ready with what the auditor holds when it is ready (for the
// /readyz body): its group and whether it has partitions.
func (a *Auditor) Status() (string, error) {
	if err := a.Ready(); err != nil {
		return "", err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.joined {
		return fmt.Sprintf("member of group %s with no partitions: the other members hold them all", a.cfg.group), nil
	}
	return fmt.Sprintf("member of group %s, writing the chains of %d partitions", a.cfg.group, len(a.writers)), nil
}

func (a *Auditor) setReady(err error) {
	a.mu.Lock()
	a.notReady = err
	a.mu.Unlock()
}

// bucketChecker is implemented by stores that can vouch for Object Lock.
type bucketChecker interface {
	CheckBucket(ctx context.Context) error
}

// retry runs fn until it succeeds, ctx ends, or fn returns a permanent error
// (ErrFenced, ErrConflict). Failures count in the failure metric and make the
// auditor not ready until the next success.
func (a *Auditor) retry(ctx context.Context, what string, fn func() error) error {
	delay := a.cfg.minBackoff
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			if attempt > 1 {
				a.log.Info("S3 write recovered", "what", what, "attempts", attempt)
			}
			a.setReady(nil)
			return nil
		}
		if errors.Is(err, chain.ErrFenced) || errors.Is(err, chain.ErrConflict) || errors.Is(err, chain.ErrTampered) || ctx.Err() != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		a.m.failures.Inc()
		a.setReady(fmt.Errorf("audit store failing: %s: %w", what, err))
		a.log.Warn("audit store write failed; retrying", "what", what, "attempt", attempt, "retry_in", delay, "err", err)
		jitter := time.Duration(rand.Int64N(int64(delay)/2 + 1))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay + jitter):
		}
		delay = min(delay*2, a.cfg.maxBackoff)
	}
}

// Run consumes until ctx is done or a permanent error (fenced, conflicting
// object, bucket without Object Lock). On a graceful stop it writes the open
// batches and a final checkpoint when S3 allows.
func (a *Auditor) Run(ctx context.Context) error {
	if bc, ok := a.store.(bucketChecker); ok {
		// A bucket without Object Lock is refused at once; an unreachable
		// S3 is waited for (not ready meanwhile).
		var fatal error
		if err := a.retry(ctx, "check the audit bucket", func() error {
			err := bc.CheckBucket(ctx)
			if errors.Is(err, chain.ErrNotImmutable) {
				fatal = err
				return nil
			}
			return err
		}); err != nil {
			return err
		}
		if fatal != nil {
			return fatal
		}
	}
	pub := a.cfg.signer.Public()
	if err := a.retry(ctx, "publish public key", func() error {
		return chain.PublishPublicKey(ctx, a.store, chain.EncodePublicKey(pub), chain.KeyID(pub))
	}); err != nil {
		return err
	}
	if err := a.checkAnchor(ctx); err != nil {
		if errors.Is(err, chain.ErrTampered) {
			a.hold(ctx)
		}
		return err
	}
	opts := append([]kgo.Opt{
		kgo.ConsumerGroup(a.cfg.group),
		kgo.ConsumeTopics(a.cfg.topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.AdjustFetchOffsetsFn(a.adjust),
		kgo.OnPartitionsRevoked(a.drop),
		kgo.OnPartitionsLost(a.drop),
	}, a.cfg.clientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("auditor: kafka client: %w", err)
	}
	a.mu.Lock()
	a.cl = cl
	a.notReady = nil
	a.mu.Unlock()
	defer cl.Close()

	err = a.loop(ctx, cl)
	if errors.Is(err, chain.ErrTampered) {
		a.alarm(err)
		cl.AllowRebalance()
		a.hold(ctx)
	}

	// Graceful: finish what is batched and sign the heads, briefly.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err == nil {
		for _, p := range a.partitionsWithBatches() {
			if ferr := a.flush(sctx, cl, p); ferr != nil {
				a.log.Warn("could not write the last batch on shutdown; it will be re-read on restart", "partition", p, "err", ferr)
				break
			}
		}
		a.checkpoint(sctx)
	}
	cl.AllowRebalance()
	return err
}

func (a *Auditor) loop(ctx context.Context, cl *kgo.Client) error {
	nextCheckpoint := time.Now().Add(a.cfg.checkpointEvery)
	for {
		if ctx.Err() != nil {
			return nil
		}
		wait := time.Second
		if d := a.nextDeadline(); !d.IsZero() {
			wait = max(time.Until(d), time.Millisecond)
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		fs := cl.PollRecords(pctx, 10000)
		cancel()
		if fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			a.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
		})
		var ferr error
		fs.EachRecord(func(r *kgo.Record) {
			if ferr == nil {
				ferr = a.add(ctx, cl, r)
			}
		})
		if ferr == nil {
			ferr = a.flushDue(ctx, cl)
		}
		if ferr == nil && a.cfg.signer != nil && time.Now().After(nextCheckpoint) {
			a.checkpoint(ctx)
			nextCheckpoint = time.Now().Add(a.cfg.checkpointEvery)
		}
		cl.AllowRebalance()
		if ferr == nil {
			ferr = a.fatalErr()
		}
		if ferr != nil {
			if ctx.Err() != nil && !errors.Is(ferr, chain.ErrTampered) {
				return nil
			}
			return ferr
		}
	}
}

// hold keeps a tamper-alarmed auditor up for AlarmHold.
func (a *Auditor) hold(ctx context.Context) {
	if a.cfg.alarmHold <= 0 {
		return
	}
	a.log.Error("auditor stopped by a tamper alarm; exiting after the alarm hold", "hold", a.cfg.alarmHold)
	select {
	case <-ctx.Done():
	case <-time.After(a.cfg.alarmHold):
	}
}

func (a *Auditor) fatalErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fatal
}

// alarm raises a tamper alarm: log, metric, not ready, and the auditor
// stops. It never skips or adopts anything to carry on.
func (a *Auditor) alarm(err error) error {
	a.mu.Lock()
	first := a.fatal == nil
	if first {
		a.fatal = err
	}
	a.notReady = err
	a.mu.Unlock()
	if first {
		a.m.tamper.Inc()
		a.log.Error("TAMPER ALARM: the audit trail does not match what the auditor signed or what Kafka holds; stopping without skipping or adopting any record. Run 'pcistream verify --public-key KEY', review who wrote to the bucket, then restart", "err", err)
	}
	return err
}

// adjust runs when partitions are assigned: the position comes from the
// chain head in the store, not from committed offsets.
func (a *Auditor) adjust(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	for topic, parts := range offsets {
		if topic != a.cfg.topic {
			continue
		}
		for p := range parts {
			var w *chain.PartitionWriter
			err := a.retry(ctx, "recover and authenticate the chain head of partition "+strconv.Itoa(int(p)), func() error {
				var err error
				w, err = chain.OpenPartition(ctx, a.store, topic, p, chain.WriterName(a.cfg.writer),
					chain.WriterSigner(a.cfg.signer), chain.WriterTrust(a.cfg.trusted...))
				if err != nil {
					return err
				}
				return a.crossCheck(ctx, w)
			})
			if errors.Is(err, chain.ErrTampered) {
				return nil, a.alarm(err)
			}
			if err != nil {
				return nil, err
			}
			a.mu.Lock()
			a.writers[p] = w
			delete(a.batches, p)
			a.mu.Unlock()
			if h := w.Head(); h != nil {
				a.m.head.WithLabelValues(strconv.Itoa(int(p))).Set(float64(h.Sequence))
				a.m.lastOffset.WithLabelValues(strconv.Itoa(int(p))).Set(float64(h.LastOffset))
			}
			if off, ok := w.NextOffset(); ok {
				parts[p] = kgo.NewOffset().At(off).WithEpoch(-1)
				a.log.Info("resuming from the chain head", "partition", p, "offset", off, "sequence", w.Head().Sequence)
			} else {
				parts[p] = kgo.NewOffset().AtStart()
				a.log.Info("empty chain: archiving from the earliest offset", "partition", p)
			}
		}
	}
	a.mu.Lock()
	a.joined = true
	a.mu.Unlock()
	return offsets, nil
}

// drop forgets revoked or lost partitions: their open batches were never
// committed, so the next owner re-reads them from the chain head.
func (a *Auditor) drop(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range lost[a.cfg.topic] {
		delete(a.writers, p)
		delete(a.batches, p)
	}
}

func (a *Auditor) partitionsWithBatches() []int32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []int32
	for p, b := range a.batches {
		if len(b.recs) > 0 {
			out = append(out, p)
		}
	}
	return out
}

func (a *Auditor) nextDeadline() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var d time.Time
	for _, b := range a.batches {
		if len(b.recs) == 0 {
			continue
		}
		if t := b.started.Add(a.cfg.maxAge); d.IsZero() || t.Before(d) {
			d = t
		}
	}
	return d
}

// add converts and batches one record, writing the batch when it is full.
func (a *Auditor) add(ctx context.Context, cl *kgo.Client, r *kgo.Record) error {
	a.mu.Lock()
	w := a.writers[r.Partition]
	b := a.batches[r.Partition]
	if b == nil {
		b = &batch{}
		a.batches[r.Partition] = b
	}
	a.mu.Unlock()
	if w == nil {
		return nil // revoked between fetch and here
	}
	if h := w.Head(); h != nil && r.Offset <= h.LastOffset {
		return nil // already archived (a fetch from before the seek)
	}
	pendEnd, pending := w.PendingEnd()
	if pending && len(b.recs) > 0 && r.Offset > pendEnd {
		if err := a.flush(ctx, cl, r.Partition); err != nil {
			return err
		}
		pending = false
	}
	var rec chain.Record
	if err := a.retry(ctx, "decode record (schema registry)", func() error {
		var err error
		rec, err = a.convert(r)
		return err
	}); err != nil {
		return err
	}
	if len(b.recs) == 0 {
		b.started = time.Now()
	}
	b.recs = append(b.recs, rec)
	b.bytes += len(rec.Event) + len(rec.RawMasked) + len(rec.Key) + 128
	b.epoch = r.LeaderEpoch
	switch {
	case pending && r.Offset >= pendEnd:
		return a.flush(ctx, cl, r.Partition)
	case pending:
		// The batch must end exactly where the object without manifest
		// does, whatever the limits of the writer that cut it: its records
		// were checked against Kafka when the partition was assigned.
		return nil
	case len(b.recs) >= a.cfg.maxRecords || b.bytes >= a.cfg.maxBytes:
		return a.flush(ctx, cl, r.Partition)
	}
	return nil
}

func (a *Auditor) flushDue(ctx context.Context, cl *kgo.Client) error {
	a.mu.Lock()
	var due []int32
	for p, b := range a.batches {
		if len(b.recs) > 0 && time.Since(b.started) >= a.cfg.maxAge {
			if w := a.writers[p]; w != nil {
				if _, pending := w.PendingEnd(); pending {
					continue
				}
			}
			due = append(due, p)
		}
	}
	a.mu.Unlock()
	for _, p := range due {
		if err := a.flush(ctx, cl, p); err != nil {
			return err
		}
	}
	return nil
}

// flush appends partition p's batch to its chain (retrying while S3 fails)
// and then commits the offsets.
func (a *Auditor) flush(ctx context.Context, cl *kgo.Client, p int32) error {
	a.mu.Lock()
	w, b := a.writers[p], a.batches[p]
	a.mu.Unlock()
	if w == nil || b == nil || len(b.recs) == 0 {
		return nil
	}
	var m *chain.Manifest
	start := time.Now()
	err := a.retry(ctx, fmt.Sprintf("batch %d..%d of partition %d", b.recs[0].Offset, b.recs[len(b.recs)-1].Offset, p), func() error {
		var err error
		recs := make([]chain.Record, len(b.recs))
		copy(recs, b.recs)
		m, err = w.Append(ctx, recs)
		return err
	})
	if err != nil {
		return fmt.Errorf("partition %d: %w", p, err)
	}
	a.m.writeSeconds.WithLabelValues("batch").Observe(time.Since(start).Seconds())
	a.m.records.Add(float64(m.RecordCount))
	a.m.batches.Inc()
	ps := strconv.Itoa(int(p))
	a.m.head.WithLabelValues(ps).Set(float64(m.Sequence))
	a.m.lastOffset.WithLabelValues(ps).Set(float64(m.LastOffset))
	a.mu.Lock()
	if a.batches[p] == b {
		a.batches[p] = &batch{}
	}
	a.mu.Unlock()
	// The batch is durable: only now may the group's offset move. A failed
	// commit is harmless, the next assignment seeks from the chain anyway.
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{
		a.cfg.topic: {p: {Epoch: b.epoch, Offset: m.LastOffset + 1}},
	}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err == nil && resp != nil {
			for _, t := range resp.Topics {
				for _, rp := range t.Partitions {
					if err == nil {
						err = kerr.ErrorForCode(rp.ErrorCode)
					}
				}
			}
		}
		if err != nil && ctx.Err() == nil {
			a.log.Warn("offset commit failed (the chain head stays authoritative)", "partition", p, "err", err)
		}
	})
	a.log.Debug("batch archived", "partition", p, "sequence", m.Sequence, "first", m.FirstOffset, "last", m.LastOffset, "records", m.RecordCount)
	return nil
}

func (a *Auditor) checkpoint(ctx context.Context) {
	if a.fatalErr() != nil {
		return
	}
	a.publishAnchor(ctx) // one left over from a Kafka outage first
	start := time.Now()
	var c *chain.Checkpoint
	err := a.retryBounded(ctx, func() error {
		if err := a.bucketHoldsAnchor(ctx); err != nil {
			return err
		}
		var err error
		c, err = chain.WriteCheckpoint(ctx, a.store, a.cfg.signer, time.Now(), a.cfg.trusted...)
		return err
	})
	if errors.Is(err, chain.ErrTampered) {
		a.alarm(err)
		return
	}
	if err != nil {
		a.log.Warn("checkpoint not written", "err", err)
		return
	}
	if c != nil {
		a.m.checkpoints.Inc()
		a.m.writeSeconds.WithLabelValues("checkpoint").Observe(time.Since(start).Seconds())
		a.log.Info("checkpoint signed", "sequence", c.Sequence, "partitions", len(c.Heads))
		a.mu.Lock()
		a.unanchored = c.Encode()
		a.mu.Unlock()
		a.publishAnchor(ctx)
	}
}

// retryBounded retries a checkpoint a few times: a lost race with another
// instance (ErrExists) or a transient error is retried at the next tick.
func (a *Auditor) retryBounded(ctx context.Context, fn func() error) error {
	var err error
	for i := 0; i < 3; i++ {
		if err = fn(); err == nil || errors.Is(err, chain.ErrTampered) {
			return err
		}
		if !errors.Is(err, chain.ErrExists) {
			a.m.failures.Inc()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(a.cfg.minBackoff):
		}
	}
	return err
}

// convert turns a Kafka record into an archived record, masking anything
// PAN-like in the key and in every string of the event.
func (a *Auditor) convert(r *kgo.Record) (chain.Record, error) {
	out := chain.Record{
		Partition:   r.Partition,
		Offset:      r.Offset,
		KafkaTimeMs: r.Timestamp.UnixMilli(),
		TimeMs:      r.Timestamp.UnixMilli(),
	}
	if len(r.Key) > 0 {
		k, n := a.det.Mask(nil, r.Key, a.cfg.policy)
		a.m.masked.Add(float64(n))
		out.Key = string(k)
	}
	ev, t, err := a.cfg.decode(r.Value)
	if errors.Is(err, ErrTransient) {
		return out, err
	}
	if err == nil {
		var raw []byte
		raw, err = a.maskEvent(ev)
		if err == nil {
			out.Event = raw
			if t > 0 {
				out.TimeMs = t
			}
			return out, nil
		}
	}
	a.m.decodeErrors.Inc()
	msg, n := a.det.MaskString(err.Error(), a.cfg.policy)
	val, n2 := a.det.Mask(nil, r.Value, a.cfg.policy)
	a.m.masked.Add(float64(n + n2))
	out.DecodeError = msg
	out.RawMasked = base64.StdEncoding.EncodeToString(val)
	return out, nil
}

// maskEvent re-encodes the event as canonical JSON (sorted keys) with every
// string and object key masked. Numbers are left alone: the event's numeric
// fields are offsets, partitions and times, never card numbers.
func (a *Auditor) maskEvent(ev any) ([]byte, error) {
	if ae, ok := ev.(schemas.AuditEvent); ok {
		// Fast path for the contract type: mask its strings in place
		// and encode once (field order is fixed: deterministic).
		for _, f := range []*string{&ae.ID, &ae.Actor, &ae.Action, &ae.Outcome, &ae.Topic, &ae.Subject, &ae.Reason} {
			*f = a.maskString(*f)
		}
		if len(ae.Attrs) > 0 {
			attrs := make(map[string]string, len(ae.Attrs))
			for k, v := range ae.Attrs {
				attrs[a.maskString(k)] = a.maskString(v)
			}
			ae.Attrs = attrs
		}
		return json.Marshal(ae)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("event does not encode as JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	v = a.maskValue(v)
	return json.Marshal(v)
}

func (a *Auditor) maskString(s string) string {
	out, n := a.det.MaskString(s, a.cfg.policy)
	if n > 0 {
		a.m.masked.Add(float64(n))
	}
	return out
}

func (a *Auditor) maskValue(v any) any {
	switch x := v.(type) {
	case string:
		s, n := a.det.MaskString(x, a.cfg.policy)
		a.m.masked.Add(float64(n))
		return s
	case []any:
		for i := range x {
			x[i] = a.maskValue(x[i])
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			mk, n := a.det.MaskString(k, a.cfg.policy)
			a.m.masked.Add(float64(n))
			out[mk] = a.maskValue(e)
		}
		return out
	}
	return v
}
