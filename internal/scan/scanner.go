// Package scan finds card numbers (PANs) where they should not be: Kafka
// topics, S3 prefixes, PostgreSQL databases and local files. It uses the same
// detector as the masker (internal/pan), so "the scan is clean" means exactly
// "the masker would have found nothing to mask".
//
// A scan never prints, logs or returns a full PAN: findings carry the
// location, the card network and at most the last four digits; location
// strings (keys, file names, primary key values) and error messages are
// masked with the detector before they leave the package.
package scan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/pan"
)

// DefaultExcludeSchemas are the PostgreSQL schemas skipped unless
// ExcludeSchemas says otherwise: the catalogs hold no user data.
var DefaultExcludeSchemas = []string{"pg_catalog", "information_schema", "pg_toast"}

type cfg struct {
	kafka          config.Kafka
	s3             config.S3
	s3Client       *s3.Client
	rowLimit       int64
	excludeSchemas []string
	includeSchemas []string
	baseline       *Baseline
	progress       func(Progress)
	progressEvery  time.Duration
	kafkaIdle      time.Duration
	dialTimeout    time.Duration
	workers        int
	logger         *slog.Logger
}

// Opt configures a Scanner.
type Opt func(*cfg)

// Config takes Kafka (brokers, TLS, SASL) and S3 (endpoint, region,
// credentials) settings from the shared configuration.
func Config(c config.Config) Opt {
	return func(o *cfg) { o.kafka, o.s3 = c.Kafka, c.S3 }
}

// Kafka sets the Kafka client settings; brokers given in a kafka:// target
// override Brokers.
func Kafka(k config.Kafka) Opt { return func(o *cfg) { o.kafka = k } }

// S3 sets the S3 endpoint, region and credentials used for s3:// targets.
func S3(c config.S3) Opt { return func(o *cfg) { o.s3 = c } }

// S3Client uses an existing client for s3:// targets instead of building one
// from the S3 settings.
func S3Client(c *s3.Client) Opt { return func(o *cfg) { o.s3Client = c } }

// RowLimit scans at most n rows of each PostgreSQL table (0, the default,
// scans every row).
func RowLimit(n int64) Opt { return func(o *cfg) { o.rowLimit = n } }

// ExcludeSchemas replaces DefaultExcludeSchemas: PostgreSQL schemas not scanned.
func ExcludeSchemas(schemas ...string) Opt {
	return func(o *cfg) { o.excludeSchemas = append([]string(nil), schemas...) }
}

// Schemas limits PostgreSQL scans to the named schemas (default: every schema
// not excluded).
func Schemas(schemas ...string) Opt {
	return func(o *cfg) { o.includeSchemas = append([]string(nil), schemas...) }
}

// WithBaseline suppresses findings whose fingerprint is in b: they are not
// reported, only counted in Summary.Suppressed.
func WithBaseline(b *Baseline) Opt { return func(o *cfg) { o.baseline = b } }

// ProgressFunc calls fn about every interval with running totals, and once
// more when the scan ends. fn runs on its own goroutine.
func ProgressFunc(every time.Duration, fn func(Progress)) Opt {
	return func(o *cfg) { o.progress, o.progressEvery = fn, every }
}

// KafkaIdleTimeout bounds how long a Kafka partition may return nothing
// before the scan gives up on reaching its end offset (the tail of a
// partition can be aborted transactional records that a read_committed
// consumer never sees). Such partitions are listed in Summary.Warnings.
// Default 10s.
func KafkaIdleTimeout(d time.Duration) Opt { return func(o *cfg) { o.kafkaIdle = d } }

// DialTimeout bounds connecting to a service and listing what to scan.
// Default 15s.
func DialTimeout(d time.Duration) Opt { return func(o *cfg) { o.dialTimeout = d } }

// Concurrency sets how many S3 objects or files are read at once (default 4):
// object stores serve parallel GETs far faster than one stream.
func Concurrency(n int) Opt {
	return func(o *cfg) {
		if n > 0 {
			o.workers = n
		}
	}
}

// Logger sets a logger for a debug line per scanned target (counts and the
// masked target; never data).
func Logger(l *slog.Logger) Opt { return func(o *cfg) { o.logger = l } }

// Scanner scans targets for PANs. It is safe for concurrent use; each Scan
// call keeps its own counters.
type Scanner struct {
	det *pan.Detector
	cfg cfg
}

// New returns a Scanner using det, the same detector the masker uses.
func New(det *pan.Detector, opts ...Opt) *Scanner {
	c := cfg{
		excludeSchemas: DefaultExcludeSchemas,
		kafkaIdle:      10 * time.Second,
		dialTimeout:    15 * time.Second,
		progressEvery:  time.Second,
		workers:        4,
	}
	for _, o := range opts {
		o(&c)
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return &Scanner{det: det, cfg: c}
}

// Progress is a snapshot of a running scan.
type Progress struct {
	Target   string        // the target being scanned (redacted)
	Items    int64         // records, rows, objects/files scanned so far
	Bytes    int64         // bytes scanned so far (decompressed)
	Findings int64         // findings reported so far (not counting suppressed)
	Elapsed  time.Duration // since the scan started
	Done     bool          // the final call
}

// TargetSummary is what one target's scan covered.
type TargetSummary struct {
	Target   string        `json:"target"`
	Source   Source        `json:"source"`
	Items    int64         `json:"items"`
	Bytes    int64         `json:"bytes"`
	Findings int           `json:"findings"`
	Duration time.Duration `json:"duration_ns"`
	Error    string        `json:"error,omitempty"`
}

// Summary is what a Scan covered and found.
type Summary struct {
	Targets []TargetSummary `json:"targets"`
	// Items counts Kafka records, PostgreSQL rows, S3 objects and files.
	Items int64 `json:"items"`
	// Bytes counts scanned bytes (after gzip decompression).
	Bytes int64 `json:"bytes"`
	// Findings counts reported findings, ByKind splits them.
	Findings int          `json:"findings"`
	ByKind   map[Kind]int `json:"by_kind"`
	// Suppressed counts findings matched by the baseline.
	Suppressed int `json:"suppressed"`
	// Warnings are places the scan may not have fully covered.
	Warnings []string      `json:"warnings,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// run is the state of one Scan call.
type run struct {
	s        *Scanner
	report   func(Finding)
	items    atomic.Int64
	bytes    atomic.Int64
	findings atomic.Int64

	mu         sync.Mutex
	target     string
	suppressed int
	byKind     map[Kind]int
	warnings   []string
}

// Scan scans every target in turn and calls report (from one goroutine at a
// time) for each finding not in the baseline. An unreachable or invalid
// target does not stop the others: Scan goes on and returns the joined
// errors, each one line, saying what to fix. Findings reported before an
// error stand.
func (s *Scanner) Scan(ctx context.Context, targets []Target, report func(Finding)) (Summary, error) {
	r := &run{s: s, report: report, byKind: map[Kind]int{}}
	start := time.Now()
	stop := r.startProgress(start)
	var sum Summary
	var errs []error
	for _, t := range targets {
		r.mu.Lock()
		r.target = s.mask(t.String())
		r.mu.Unlock()
		i0, b0, f0 := r.items.Load(), r.bytes.Load(), r.findings.Load()
		ts := time.Now()
		err := r.scanTarget(ctx, t)
		tsum := TargetSummary{
			Target:   s.mask(t.String()),
			Source:   t.Source,
			Items:    r.items.Load() - i0,
			Bytes:    r.bytes.Load() - b0,
			Findings: int(r.findings.Load() - f0),
			Duration: time.Since(ts),
		}
		if err != nil {
			err = r.s.cleanErr(fmt.Errorf("scan %s: %w", t.String(), err))
			tsum.Error = err.Error()
			errs = append(errs, err)
		}
		s.cfg.logger.Debug("scanned target", "target", tsum.Target, "items", tsum.Items, "bytes", tsum.Bytes,
			"findings", tsum.Findings, "duration", tsum.Duration, "error", tsum.Error)
		sum.Targets = append(sum.Targets, tsum)
		if ctx.Err() != nil {
			break
		}
	}
	stop()
	sum.Items, sum.Bytes, sum.Findings = r.items.Load(), r.bytes.Load(), int(r.findings.Load())
	r.mu.Lock()
	sum.ByKind, sum.Suppressed, sum.Warnings = r.byKind, r.suppressed, r.warnings
	r.mu.Unlock()
	sum.Duration = time.Since(start)
	if len(errs) == 0 {
		return sum, nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	// One line even for several failed targets.
	return sum, &Error{msg: strings.Join(msgs, "; "), err: errors.Join(errs...)}
}

func (r *run) scanTarget(ctx context.Context, t Target) error {
	switch t.Source {
	case SourceKafka:
		return r.scanKafka(ctx, t)
	case SourceS3:
		return r.scanS3(ctx, t)
	case SourcePostgres:
		return r.scanPostgres(ctx, t)
	case SourceFile:
		return r.scanFiles(ctx, t)
	}
	return fmt.Errorf("unknown target source %q", t.Source)
}

func (r *run) startProgress(start time.Time) (stop func()) {
	fn := r.s.cfg.progress
	if fn == nil {
		return func() {}
	}
	snap := func(done bool) Progress {
		r.mu.Lock()
		t := r.target
		r.mu.Unlock()
		return Progress{Target: t, Items: r.items.Load(), Bytes: r.bytes.Load(), Findings: r.findings.Load(), Elapsed: time.Since(start), Done: done}
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(r.s.cfg.progressEvery)
		defer tk.Stop()
		for {
			select {
			case <-quit:
				fn(snap(true))
				return
			case <-tk.C:
				fn(snap(false))
			}
		}
	}()
	return func() { close(quit); <-done }
}

// emit fills in the fingerprint, applies the baseline and reports f.
// fpLoc is the stable location used for the fingerprint (already masked).
func (r *run) emit(f Finding, fpLoc string, occurrence int) {
	// Belt and braces: every string field that may be built from data or
	// user input goes through the detector once more.
	f.Target, f.Location, f.Message = r.s.mask(f.Target), r.s.mask(f.Location), r.s.mask(f.Message)
	f.Fingerprint = fingerprint(f.Kind, r.s.mask(fpLoc), f.Last4, occurrence)
	r.mu.Lock()
	if b := r.s.cfg.baseline; b != nil && b.Contains(f.Fingerprint) {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	r.byKind[f.Kind]++
	r.findings.Add(1)
	// report runs under the lock so callers see one finding at a time.
	if r.report != nil {
		r.report(f)
	}
	r.mu.Unlock()
}

func (r *run) warn(format string, args ...any) {
	msg := r.s.mask(fmt.Sprintf(format, args...))
	r.mu.Lock()
	r.warnings = append(r.warnings, msg)
	r.mu.Unlock()
}

// mask replaces any PAN in s by its masked form (last four kept), so names
// and messages built from data never carry a full PAN.
func (s *Scanner) mask(str string) string {
	out, _ := s.det.MaskString(str, pan.Last4)
	return out
}

// cleanErr flattens err to one line and masks any PAN in it.
func (s *Scanner) cleanErr(err error) error {
	if err == nil {
		return nil
	}
	msg := strings.Join(strings.Fields(err.Error()), " ")
	return &Error{msg: s.mask(msg), err: err}
}

// Error is a scan error: a single line, PAN-masked, saying what to fix.
// Unwrap gives the underlying error for errors.Is/As; do not print it, its
// message may not be masked.
type Error struct {
	msg string
	err error
}

func (e *Error) Error() string { return e.msg }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.err }

// unitMatches numbers the matches of one scanned unit (a line, a record
// part, a cell) by last 4, so two PANs with the same last 4 in one place
// still get distinct fingerprints.
type unitMatches struct {
	seen map[[4]byte]int
}

func (u *unitMatches) occurrence(m pan.Match) int {
	if u.seen == nil {
		u.seen = map[[4]byte]int{}
	}
	n := u.seen[m.Last4]
	u.seen[m.Last4] = n + 1
	return n
}

func (u *unitMatches) reset() {
	for k := range u.seen {
		delete(u.seen, k)
	}
}

// panMessage is the one-line description of a PAN finding.
func panMessage(m pan.Match, where string) string {
	return fmt.Sprintf("%s card number (%d digits) ending %s in %s", m.Network, m.Digits, string(m.Last4[:]), where)
}
