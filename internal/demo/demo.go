// Package demo runs pcistream end to end on the embedded stack: it starts
// the stack, applies the topology and schemas, runs every processor in
// process, sends sample traffic (valid, retried, invalid and malformed
// payments; logs with card numbers in many formats; junk and oversize
// records), waits for the pipeline to settle, and checks the outcome:
// counts per topic, the audit chain in S3, and a leak scan of everything
// downstream. It backs `pcistream demo`.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/auditstore"
	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/s3x"
	"github.com/pcistream/pcistream/internal/scan"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/processors/auditor"
	"github.com/pcistream/pcistream/processors/masker"
	"github.com/pcistream/pcistream/processors/tokenizer"
	"github.com/pcistream/pcistream/schemas"
)

// Options configures Run.
type Options struct {
	// Out receives the human summary.
	Out io.Writer
	// Log receives the processors' logs (default discarded).
	Log *slog.Logger
	// Payments is the number of distinct authorizations (default 200);
	// the same number of log lines with PANs are sent, plus clean lines.
	Payments int
	// Timeout bounds the whole run (default 90s).
	Timeout time.Duration
	// Stack, when set, is used instead of starting one.
	Stack *devstack.Stack
}

// Check is one verified property of the run.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// Summary is what the demo observed.
type Summary struct {
	Topics   map[string]int64 // committed records per topic
	Checks   []Check
	Elapsed  time.Duration
	Verify   *chain.Report
	Scan     scan.Summary
	Findings []scan.Finding
}

// OK reports whether every check held.
func (s *Summary) OK() bool {
	for _, c := range s.Checks {
		if !c.OK {
			return false
		}
	}
	return len(s.Checks) > 0
}

// Run runs the demo and returns its summary; the error is non-nil when the
// demo could not run at all. A run whose checks fail returns a summary with
// OK() false. The steps: set up the stack and clients, start the processors,
// send the traffic, wait for the pipeline to settle, check the outcome.
func Run(ctx context.Context, o Options) (*Summary, error) {
	start := time.Now()
	o = o.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	st := o.Stack
	if st == nil {
		var err error
		if st, err = devstack.Start(ctx); err != nil {
			return nil, err
		}
		defer st.Close()
	}
	d, err := setUp(ctx, o, st)
	if err != nil {
		return nil, err
	}
	procs, err := d.startProcessors(ctx)
	if err != nil {
		return nil, err
	}
	defer procs.stop()
	tr, err := d.sendTraffic(ctx)
	if err != nil {
		return nil, err
	}
	if err := d.settle(ctx, tr, procs); err != nil {
		return nil, err
	}
	// Let the auditor write its last checkpoint, then stop the processors.
	time.Sleep(800 * time.Millisecond)
	procs.stop()
	d.step("pipeline settled in %v", time.Since(start).Round(100*time.Millisecond))
	d.checkCounts(tr)
	d.checkChain(ctx)
	if err := d.checkLeaks(ctx); err != nil {
		return nil, err
	}
	d.checkStopped(procs)
	d.sum.Elapsed = time.Since(start)
	return d.sum, nil
}

func (o Options) withDefaults() Options {
	if o.Payments <= 0 {
		o.Payments = 200
	}
	if o.Timeout <= 0 {
		o.Timeout = 90 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	return o
}

// demoRun is what the steps of one run share.
type demoRun struct {
	o      Options
	cfg    config.Config
	kopts  []kgo.Opt
	serde  *schemas.Serde
	store  *auditstore.Store
	signer chain.Signer
	reg    *prometheus.Registry
	sum    *Summary
	// kr is the tokenizer's keyring; the demo gateway shares it.
	kr *token.Keyring
}

func (d *demoRun) step(format string, a ...any) { fmt.Fprintf(d.o.Out, "  "+format+"\n", a...) }

func (d *demoRun) check(name string, ok bool, detail string, a ...any) {
	d.sum.Checks = append(d.sum.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(detail, a...)})
}

// setUp applies the topology and schemas on st and builds the clients,
// keys and audit store the processors share.
func setUp(ctx context.Context, o Options, st *devstack.Stack) (*demoRun, error) {
	d := &demoRun{o: o, cfg: st.Config(), reg: prometheus.NewRegistry(), sum: &Summary{Topics: map[string]int64{}}}
	d.step("embedded stack: Kafka %s, registry %s, S3 %s", st.KafkaAddrs[0], st.RegistryURL, st.S3.Endpoint)
	if err := st.Setup(ctx, &d.cfg); err != nil {
		return nil, err
	}
	d.step("topology applied, schemas registered (BACKWARD)")
	var err error
	if d.kopts, err = kafkax.Opts(d.cfg.Kafka); err != nil {
		return nil, err
	}
	if d.serde, err = schemas.Open(ctx, d.cfg.Registry, d.cfg.Topics); err != nil {
		return nil, err
	}
	s3c, err := s3x.NewClient(ctx, d.cfg.S3)
	if err != nil {
		return nil, err
	}
	d.store = auditstore.New(s3c, d.cfg.S3.Bucket)
	privPEM, err := chain.GenerateKey()
	if err != nil {
		return nil, err
	}
	priv, err := chain.ParsePrivateKey(privPEM)
	if err != nil {
		return nil, err
	}
	d.signer = chain.NewSigner(priv)
	return d, nil
}

// processors are the running tokenizer, masker and auditor.
type processors struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
}

// stop stops the processors and waits for them; it may be called twice.
func (p *processors) stop() {
	p.cancel()
	p.wg.Wait()
}

// startProcessors starts the tokenizer, masker and auditor in process.
func (d *demoRun) startProcessors(ctx context.Context) (*processors, error) {
	runs, err := d.newProcessors(ctx)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	p := &processors{cancel: cancel, errs: make(chan error, len(runs))}
	for name, run := range runs {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if err := run(runCtx); err != nil {
				p.errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	d.step("processors running: tokenizer, masker, auditor (exactly-once, read_committed)")
	return p, nil
}

func (d *demoRun) newProcessors(ctx context.Context) (map[string]func(context.Context) error, error) {
	cfg, o := d.cfg, d.o
	kr, err := token.NewKeyring()
	if err != nil {
		return nil, err
	}
	d.kr = kr
	tok, err := tokenizer.New(kr, token.NewVault(kr), d.serde, tokenizer.Topics(cfg.Topics), tokenizer.Logger(o.Log))
	if err != nil {
		return nil, err
	}
	tokLoop, err := tokenizer.NewLoop(tok, d.kopts, eos.Registerer(d.reg), eos.TransactionalID("demo-tokenizer"))
	if err != nil {
		tok.Close()
		return nil, err
	}
	// Close removes the tokenizer's temporary state store once it stops.
	runTok := func(ctx context.Context) error {
		defer tok.Close()
		return tokLoop.Run(ctx)
	}
	msk, err := masker.New(d.serde, masker.Topics(cfg.Topics), masker.MaxRecordBytes(512<<10), masker.Logger(o.Log), masker.Registerer(d.reg))
	if err != nil {
		return nil, err
	}
	mskLoop, err := masker.NewLoop(msk, d.kopts, eos.TransactionalID("demo-masker"))
	if err != nil {
		return nil, err
	}
	aud, err := auditor.New(d.store,
		auditor.Topic(cfg.Topics.AuditEvents),
		auditor.ClientOpts(d.kopts...),
		auditor.BatchLimits(500, 1<<20, 300*time.Millisecond),
		auditor.Checkpoints(d.signer, 500*time.Millisecond),
		auditor.Decoder(auditor.SerdeDecoder(ctx, d.serde)),
		auditor.Logger(o.Log),
		auditor.Registerer(d.reg),
		auditor.WriterName("demo"),
	)
	if err != nil {
		return nil, err
	}
	return map[string]func(context.Context) error{"tokenizer": runTok, "masker": mskLoop.Run, "auditor": aud.Run}, nil
}

// sendTraffic produces the sample payments and logs.
func (d *demoRun) sendTraffic(ctx context.Context) (*traffic, error) {
	tr, err := newTraffic(d.serde, d.cfg.Topics, d.o.Payments, time.Now())
	if err != nil {
		return nil, err
	}
	if err := d.sendViaGateway(ctx, tr); err != nil {
		return nil, err
	}
	prod, err := kgo.NewClient(append(d.kopts, kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))...)
	if err != nil {
		return nil, err
	}
	defer prod.Close()
	if err := prod.ProduceSync(ctx, tr.payments...).FirstErr(); err != nil {
		return nil, fmt.Errorf("send payments: %w", err)
	}
	if err := prod.ProduceSync(ctx, tr.logs...).FirstErr(); err != nil {
		return nil, fmt.Errorf("send logs: %w", err)
	}
	d.step("sent %d payment events (retries, invalid, malformed, JSON) and %d log records to Kafka directly", len(tr.payments), len(tr.logs))
	return tr, nil
}

// sendViaGateway serves the HTTP gateway in process over TLS while the
// sample payments are posted to it, then stops it.
func (d *demoRun) sendViaGateway(ctx context.Context, tr *traffic) error {
	gctx, stop := context.WithCancel(ctx)
	defer stop()
	gw, gwURL, gwClient, err := startGateway(gctx, d.kopts, d.kr, token.NewVault(d.kr), d.serde, d.cfg.Topics, d.o.Log)
	if err != nil {
		return err
	}
	tr.gwSent, tr.gwRetried = len(tr.viaHTTP), gwRetries(tr)
	tr.gwFresh, tr.gwReplayed, err = postPayments(ctx, gwClient, gwURL, tr.viaHTTP)
	stop()
	if werr := gw.Wait(); err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("send payments through the gateway: %w", err)
	}
	d.step("sent %d payments to the HTTPS gateway %s: %d accepted (202 after the Kafka commit), %d retries answered from Idempotency-Key state",
		tr.gwSent, gwURL, tr.gwFresh, tr.gwReplayed)
	return nil
}

// settle waits until every output topic holds what the traffic should
// produce and the auditor has chained every audit event, then counts once
// more a moment later, so a late duplicate would show.
func (d *demoRun) settle(ctx context.Context, tr *traffic, procs *processors) error {
	t := d.cfg.Topics
	want := map[string]int64{
		t.PaymentsTokenized: int64(tr.wantTokenized),
		t.PaymentsDLQ:       int64(tr.wantPaymentDLQ),
		t.LogsSanitized:     int64(tr.wantSanitized),
		t.LogsDLQ:           int64(tr.wantLogDLQ),
	}
	topics := []string{t.PaymentsRaw, t.PaymentsTokenized, t.PaymentsDLQ, t.Vault, t.LogsRaw, t.LogsSanitized, t.LogsDLQ, t.AuditEvents}
	for settled := false; !settled; {
		select {
		case err := <-procs.errs:
			return err
		case <-ctx.Done():
			return fmt.Errorf("pipeline did not settle in %v: %v", d.o.Timeout, d.sum.Topics)
		case <-time.After(250 * time.Millisecond):
		}
		counts, err := countCommitted(ctx, d.kopts, topics)
		if err != nil {
			continue
		}
		d.sum.Topics = counts
		settled = true
		for topic, n := range want {
			if counts[topic] < n {
				settled = false
			}
		}
		// Audit events are all in; wait for the auditor to chain them.
		settled = settled && auditedThrough(ctx, d.store, counts[t.AuditEvents])
	}
	time.Sleep(time.Second)
	if counts, err := countCommitted(ctx, d.kopts, topics); err == nil {
		d.sum.Topics = counts
	}
	return nil
}

// checkCounts checks the committed records per topic and the masking
// metric against what the traffic planted.
func (d *demoRun) checkCounts(tr *traffic) {
	t, c := d.cfg.Topics, d.sum.Topics
	d.check("every valid payment tokenized exactly once", c[t.PaymentsTokenized] == int64(tr.wantTokenized),
		"%d tokenized, want %d", c[t.PaymentsTokenized], tr.wantTokenized)
	d.check("sample payments entered through the HTTPS gateway", tr.gwFresh == tr.gwSent-tr.gwRetried && tr.gwReplayed == tr.gwRetried,
		"%d accepted, %d retries replayed without a second event", tr.gwFresh, tr.gwReplayed)
	d.check("webhook retries deduplicated", c[t.PaymentsTokenized] == int64(tr.wantTokenized),
		"%d retries sent, %d extra tokenized events", tr.retries, c[t.PaymentsTokenized]-int64(tr.wantTokenized))
	d.check("every PAN sealed in the vault", c[t.Vault] >= int64(tr.wantTokenized),
		"%d vault records for %d tokenized payments", c[t.Vault], tr.wantTokenized)
	d.check("invalid and malformed payments dead-lettered", c[t.PaymentsDLQ] == int64(tr.wantPaymentDLQ),
		"%d in %s, want %d (Luhn, expiry, amount, malformed Avro, unknown schema id, junk)", c[t.PaymentsDLQ], t.PaymentsDLQ, tr.wantPaymentDLQ)
	d.check("every log record sanitized exactly once", c[t.LogsSanitized] == int64(tr.wantSanitized),
		"%d sanitized, want %d", c[t.LogsSanitized], tr.wantSanitized)
	d.check("oversize log record dead-lettered", c[t.LogsDLQ] == int64(tr.wantLogDLQ),
		"%d in %s, want %d", c[t.LogsDLQ], t.LogsDLQ, tr.wantLogDLQ)
	masked := counterSum(d.reg, "pcistream_pans_masked_total")
	d.check("PANs in logs masked", masked >= float64(tr.pansInLogs),
		"%.0f masked, %d planted (values, JSON, URLs, XML, headers)", masked, tr.pansInLogs)
}

// checkChain verifies the audit chain in S3 against the signing key.
func (d *demoRun) checkChain(ctx context.Context) {
	t, c := d.cfg.Topics, d.sum.Topics
	rep, err := chain.Verify(ctx, d.store, chain.TrustedKey(d.signer.Public()), chain.CheckRetention(true))
	if err != nil {
		d.check("audit chain verifies", false, "verify: %v", err)
		return
	}
	d.sum.Verify = rep
	var recs uint64
	for _, p := range rep.Partitions {
		recs += p.Records
	}
	detail := fmt.Sprintf("%d partitions, %d records, %d checkpoints, 0 defects", len(rep.Partitions), recs, rep.Checkpoints)
	if !rep.OK() {
		detail = fmt.Sprintf("%d defects, first: %s", len(rep.Defects), rep.Defects[0])
	}
	d.check("audit chain verifies (hashes, Merkle roots, links, signatures, retention)", rep.OK() && recs == uint64(c[t.AuditEvents]), "%s; %d audit events on %s", detail, c[t.AuditEvents], t.AuditEvents)
	d.check("audit checkpoints signed", rep.Checkpoints > 0, "%d Ed25519 checkpoints", rep.Checkpoints)
}

// checkLeaks scans everything downstream of pcistream for PANs.
func (d *demoRun) checkLeaks(ctx context.Context) error {
	t := d.cfg.Topics
	var targets []string
	for _, topic := range []string{t.PaymentsTokenized, t.PaymentsDLQ, t.LogsSanitized, t.LogsDLQ, t.AuditEvents} {
		targets = append(targets, "kafka://"+d.cfg.Kafka.Brokers[0]+"/"+topic)
	}
	targets = append(targets, "s3://"+d.cfg.S3.Bucket+"/")
	parsed, err := scan.ParseTargets(targets)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	scanSum, err := scan.New(pan.New(), scan.Config(d.cfg), scan.KafkaIdleTimeout(5*time.Second)).Scan(ctx, parsed, func(f scan.Finding) {
		mu.Lock()
		d.sum.Findings = append(d.sum.Findings, f)
		mu.Unlock()
	})
	d.sum.Scan = scanSum
	const name = "leak scan of sanitized topics, DLQs, audit events and the audit bucket"
	if err != nil {
		d.check(name, false, "scan: %v", err)
		return nil
	}
	d.check(name, scanSum.Findings == 0, "%d items, %.1f MB scanned, %d findings", scanSum.Items, float64(scanSum.Bytes)/1e6, scanSum.Findings)
	return nil
}

// checkStopped checks no processor failed.
func (d *demoRun) checkStopped(procs *processors) {
	select {
	case err := <-procs.errs:
		d.check("processors stopped cleanly", false, "%v", err)
	default:
		d.check("processors stopped cleanly", true, "tokenizer, masker, auditor")
	}
}

// countCommitted counts the records a read_committed consumer sees on each
// topic, read to the last stable offset.
func countCommitted(ctx context.Context, kopts []kgo.Opt, topics []string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, tp := range topics {
		err := kafkax.ReadStable(ctx, kopts, tp, func(*kgo.Record) error {
			out[tp]++
			return nil
		}, kafkax.IdleTimeout(2*time.Second))
		var stalled *kafkax.StalledError
		if err != nil && !errors.As(err, &stalled) {
			return nil, err
		}
	}
	return out, nil
}

// auditedThrough reports whether the chain in S3 holds n records.
func auditedThrough(ctx context.Context, s chain.Store, n int64) bool {
	rep, err := chain.Verify(ctx, s, chain.SkipObjects(func(*chain.Manifest) bool { return true }))
	if err != nil {
		return false
	}
	var got uint64
	for _, p := range rep.Partitions {
		got += p.Records
	}
	return int64(got) >= n
}

func counterSum(g prometheus.Gatherer, name string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += metricValue(m)
		}
	}
	return sum
}

func metricValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return 0
}

// Print writes the summary as the demo's closing report.
func Print(w io.Writer, s *Summary, t config.Topics) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Records per topic (read_committed)")
	for _, topic := range []string{t.PaymentsRaw, t.PaymentsTokenized, t.Vault, t.PaymentsDLQ, t.LogsRaw, t.LogsSanitized, t.LogsDLQ, t.AuditEvents} {
		fmt.Fprintf(w, "  %-28s %6d\n", topic, s.Topics[topic])
	}
	if s.Verify != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Audit chain in S3 (Object Lock COMPLIANCE)")
		for _, p := range s.Verify.Partitions {
			fmt.Fprintf(w, "  partition %d: %d batches, %d records, offsets %d..%d, tree root %.16s…\n",
				p.Partition, p.Manifests, p.Records, p.FirstOffset, p.LastOffset, p.TreeRoot)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Checks")
	for _, c := range s.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  [%s] %s: %s\n", mark, c.Name, c.Detail)
	}
	for _, f := range s.Findings {
		fmt.Fprintf(w, "  finding: %s %s …%s\n", f.Location, f.Network, f.Last4)
	}
	fmt.Fprintln(w)
	if s.OK() {
		fmt.Fprintf(w, "All %d checks passed in %v.\n", len(s.Checks), s.Elapsed.Round(100*time.Millisecond))
	} else {
		fmt.Fprintf(w, "Some checks FAILED (%v).\n", s.Elapsed.Round(100*time.Millisecond))
	}
}
