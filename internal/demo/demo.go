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
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
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
// OK() false.
func Run(ctx context.Context, o Options) (*Summary, error) {
	start := time.Now()
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
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	step := func(format string, a ...any) { fmt.Fprintf(o.Out, "  "+format+"\n", a...) }

	st := o.Stack
	if st == nil {
		var err error
		st, err = devstack.Start(ctx)
		if err != nil {
			return nil, err
		}
		defer st.Close()
	}
	cfg := st.Config()
	step("embedded stack: Kafka %s, registry %s, S3 %s", st.KafkaAddrs[0], st.RegistryURL, st.S3.Endpoint)
	if err := st.Setup(ctx, &cfg); err != nil {
		return nil, err
	}
	step("topology applied, schemas registered (BACKWARD)")

	kopts, err := kafkax.Opts(cfg.Kafka)
	if err != nil {
		return nil, err
	}
	serde, err := schemas.Open(ctx, cfg.Registry, cfg.Topics)
	if err != nil {
		return nil, err
	}
	kr, err := token.NewKeyring()
	if err != nil {
		return nil, err
	}
	vault := token.NewVault(kr)
	s3c, err := s3x.NewClient(ctx, cfg.S3)
	if err != nil {
		return nil, err
	}
	store := auditstore.New(s3c, cfg.S3.Bucket)
	privPEM, err := chain.GenerateKey()
	if err != nil {
		return nil, err
	}
	priv, err := chain.ParsePrivateKey(privPEM)
	if err != nil {
		return nil, err
	}
	signer := chain.NewSigner(priv)
	reg := prometheus.NewRegistry()

	// Processors.
	tok, err := tokenizer.New(kr, vault, serde, tokenizer.Topics(cfg.Topics), tokenizer.Logger(o.Log))
	if err != nil {
		return nil, err
	}
	tokLoop, err := tokenizer.NewLoop(tok, kopts, eos.Registerer(reg), eos.TransactionalID("demo-tokenizer"))
	if err != nil {
		return nil, err
	}
	msk, err := masker.New(serde, masker.Topics(cfg.Topics), masker.MaxRecordBytes(512<<10), masker.Logger(o.Log), masker.Registerer(reg))
	if err != nil {
		return nil, err
	}
	mskLoop, err := masker.NewLoop(msk, kopts, eos.TransactionalID("demo-masker"))
	if err != nil {
		return nil, err
	}
	aud, err := auditor.New(store,
		auditor.Topic(cfg.Topics.AuditEvents),
		auditor.ClientOpts(kopts...),
		auditor.BatchLimits(500, 1<<20, 300*time.Millisecond),
		auditor.Checkpoints(signer, 500*time.Millisecond),
		auditor.Decoder(auditor.SerdeDecoder(ctx, serde)),
		auditor.Logger(o.Log),
		auditor.Registerer(reg),
		auditor.WriterName("demo"),
	)
	if err != nil {
		return nil, err
	}
	runCtx, stopProcs := context.WithCancel(ctx)
	var wg sync.WaitGroup
	procErrs := make(chan error, 3)
	for name, run := range map[string]func(context.Context) error{"tokenizer": tokLoop.Run, "masker": mskLoop.Run, "auditor": aud.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(runCtx); err != nil {
				procErrs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	stopAll := func() {
		stopProcs()
		wg.Wait()
	}
	defer stopAll()
	step("processors running: tokenizer, masker, auditor (exactly-once, read_committed)")

	// Traffic.
	tr, err := newTraffic(serde, cfg.Topics, o.Payments, time.Now())
	if err != nil {
		return nil, err
	}
	prod, err := kgo.NewClient(append(kopts, kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))...)
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
	step("sent %d payment events and %d log records", len(tr.payments), len(tr.logs))

	// Wait for the pipeline to settle.
	adm := kadm.NewClient(prod)
	t := cfg.Topics
	want := map[string]int64{
		t.PaymentsTokenized: int64(tr.wantTokenized),
		t.PaymentsDLQ:       int64(tr.wantPaymentDLQ),
		t.LogsSanitized:     int64(tr.wantSanitized),
		t.LogsDLQ:           int64(tr.wantLogDLQ),
	}
	sum := &Summary{Topics: map[string]int64{}}
	topics := []string{t.PaymentsRaw, t.PaymentsTokenized, t.PaymentsDLQ, t.Vault, t.LogsRaw, t.LogsSanitized, t.LogsDLQ, t.AuditEvents}
	settled := false
	for !settled {
		select {
		case err := <-procErrs:
			return nil, err
		case <-ctx.Done():
			return nil, fmt.Errorf("pipeline did not settle in %v: %v", o.Timeout, sum.Topics)
		case <-time.After(250 * time.Millisecond):
		}
		counts, err := countCommitted(ctx, kopts, adm, topics)
		if err != nil {
			continue
		}
		sum.Topics = counts
		settled = true
		for topic, n := range want {
			if counts[topic] < n {
				settled = false
			}
		}
		if settled {
			// Audit events are all in; wait for the auditor to chain them.
			settled = auditedThrough(ctx, store, counts[t.AuditEvents])
		}
	}
	// Give a late duplicate the chance to show before counting for real.
	time.Sleep(time.Second)
	if counts, err := countCommitted(ctx, kopts, adm, topics); err == nil {
		sum.Topics = counts
	}
	// Let the auditor write its last checkpoint, then stop the processors.
	time.Sleep(800 * time.Millisecond)
	stopAll()
	step("pipeline settled in %v", time.Since(start).Round(100*time.Millisecond))

	check := func(name string, ok bool, detail string, a ...any) {
		sum.Checks = append(sum.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(detail, a...)})
	}
	c := sum.Topics
	check("every valid payment tokenized exactly once", c[t.PaymentsTokenized] == int64(tr.wantTokenized),
		"%d tokenized, want %d", c[t.PaymentsTokenized], tr.wantTokenized)
	check("webhook retries deduplicated", c[t.PaymentsTokenized] == int64(tr.wantTokenized),
		"%d retries sent, %d extra tokenized events", tr.retries, c[t.PaymentsTokenized]-int64(tr.wantTokenized))
	check("every PAN sealed in the vault", c[t.Vault] >= int64(tr.wantTokenized),
		"%d vault records for %d tokenized payments", c[t.Vault], tr.wantTokenized)
	check("invalid and malformed payments dead-lettered", c[t.PaymentsDLQ] == int64(tr.wantPaymentDLQ),
		"%d in %s, want %d (Luhn, expiry, amount, malformed Avro, unknown schema id, junk)", c[t.PaymentsDLQ], t.PaymentsDLQ, tr.wantPaymentDLQ)
	check("every log record sanitized exactly once", c[t.LogsSanitized] == int64(tr.wantSanitized),
		"%d sanitized, want %d", c[t.LogsSanitized], tr.wantSanitized)
	check("oversize log record dead-lettered", c[t.LogsDLQ] == int64(tr.wantLogDLQ),
		"%d in %s, want %d", c[t.LogsDLQ], t.LogsDLQ, tr.wantLogDLQ)
	masked := counterSum(reg, "pcistream_pans_masked_total")
	check("PANs in logs masked", masked >= float64(tr.pansInLogs),
		"%.0f masked, %d planted (values, JSON, URLs, XML, headers)", masked, tr.pansInLogs)

	// The audit chain.
	pub := signer.Public()
	rep, err := chain.Verify(ctx, store, chain.TrustedKey(pub), chain.CheckRetention(true))
	if err != nil {
		check("audit chain verifies", false, "verify: %v", err)
	} else {
		sum.Verify = rep
		var recs uint64
		for _, p := range rep.Partitions {
			recs += p.Records
		}
		detail := fmt.Sprintf("%d partitions, %d records, %d checkpoints, 0 defects", len(rep.Partitions), recs, rep.Checkpoints)
		if !rep.OK() {
			detail = fmt.Sprintf("%d defects, first: %s", len(rep.Defects), rep.Defects[0])
		}
		check("audit chain verifies (hashes, Merkle roots, links, signatures, retention)", rep.OK() && recs == uint64(c[t.AuditEvents]), "%s; %d audit events on %s", detail, c[t.AuditEvents], t.AuditEvents)
		check("audit checkpoints signed", rep.Checkpoints > 0, "%d Ed25519 checkpoints", rep.Checkpoints)
	}

	// The leak scan of everything downstream of pcistream.
	var targets []string
	for _, topic := range []string{t.PaymentsTokenized, t.PaymentsDLQ, t.LogsSanitized, t.LogsDLQ, t.AuditEvents} {
		targets = append(targets, "kafka://"+cfg.Kafka.Brokers[0]+"/"+topic)
	}
	targets = append(targets, "s3://"+cfg.S3.Bucket+"/")
	parsed, err := scan.ParseTargets(targets)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	scanSum, err := scan.New(pan.New(), scan.Config(cfg), scan.KafkaIdleTimeout(5*time.Second)).Scan(ctx, parsed, func(f scan.Finding) {
		mu.Lock()
		sum.Findings = append(sum.Findings, f)
		mu.Unlock()
	})
	sum.Scan = scanSum
	if err != nil {
		check("leak scan of sanitized topics, DLQs, audit events and the audit bucket", false, "scan: %v", err)
	} else {
		check("leak scan of sanitized topics, DLQs, audit events and the audit bucket", scanSum.Findings == 0,
			"%d items, %.1f MB scanned, %d findings", scanSum.Items, float64(scanSum.Bytes)/1e6, scanSum.Findings)
	}
	select {
	case err := <-procErrs:
		check("processors stopped cleanly", false, "%v", err)
	default:
		check("processors stopped cleanly", true, "tokenizer, masker, auditor")
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// countCommitted counts the records a read_committed consumer sees on each
// topic: the last stable offset minus the start offset, minus transaction
// markers and aborted records, measured by reading.
func countCommitted(ctx context.Context, kopts []kgo.Opt, adm *kadm.Client, topics []string) (map[string]int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	offsets := map[string]map[int32]kgo.Offset{}
	want := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset == 0 {
			return
		}
		if offsets[o.Topic] == nil {
			offsets[o.Topic] = map[int32]kgo.Offset{}
			want[o.Topic] = map[int32]int64{}
		}
		offsets[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
		want[o.Topic][o.Partition] = o.Offset
	})
	out := map[string]int64{}
	for _, tp := range topics {
		out[tp] = 0
	}
	if len(offsets) == 0 {
		return out, nil
	}
	cl, err := kgo.NewClient(append(kopts, kgo.ConsumePartitions(offsets), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	remaining := 0
	for _, ps := range want {
		remaining += len(ps)
	}
	for remaining > 0 {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if pctx.Err() != nil && fs.NumRecords() == 0 {
			// The rest is markers or aborted data: nothing more to see.
			break
		}
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				out[r.Topic]++
				if r.Offset+1 >= want[r.Topic][r.Partition] {
					if _, ok := want[r.Topic][r.Partition]; ok {
						delete(want[r.Topic], r.Partition)
						remaining--
					}
				}
			}
		})
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
