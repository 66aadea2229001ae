// Command tokenizer benchmarks the tokenizer end to end through the embedded
// Kafka broker (kfake) with transactions: events per second and per
// CPU-second, and produce-to-visible latency (p50/p99) at half the measured
// maximum rate. Baselines run in the same process on the same broker: a
// non-transactional consume-produce passthrough, and a transactional
// passthrough on the same exactly-once loop the tokenizer uses (no crypto,
// no Avro), so the ratios separate the tokenizer's own cost from the cost of
// exactly-once. Latency is measured per stage (input at a plain consumer,
// the repartition topic and the output at read_committed consumers), next
// to EOS passthroughs with one and two transactional hops at the same rate:
// the floors the tokenizer's two hops cannot beat on that broker.
//
//	go run ./bench/tokenizer -events 40000 -write bench/RESULTS.md
//	go run ./bench/tokenizer -real-kafka -events 40000 -write bench/RESULTS.md
//
// -cpuprofile profiles the tokenizer's throughput run; -kgo-log writes the
// loops' franz-go debug logs, to see which request a stage waits on.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/pcistream/pcistream/bench/internal/produce"
	"github.com/pcistream/pcistream/bench/internal/results"
	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/kafkabroker"
	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/processors/tokenizer"
	"github.com/pcistream/pcistream/schemas"
	"github.com/pcistream/pcistream/topology"
)

// realKafka runs on a real Apache Kafka broker (package kafkabroker)
// instead of kfake; the results go in their own section.
var realKafka bool

const (
	refTPSPerVCPU = 1200.0 // published reference
	refP99        = 12 * time.Millisecond
)

func main() {
	var (
		events     = flag.Int("events", 40000, "events per throughput run")
		partitions = flag.Int("partitions", 3, "partitions of every topic")
		latDur     = flag.Duration("latency-duration", 10*time.Second, "length of the latency run")
		write      = flag.String("write", "", "update the tokenizer section of this RESULTS.md")
	)
	flag.BoolVar(&realKafka, "real-kafka", false, "run on a real Apache Kafka 4.x broker (needs Java; results in the tokenizer-kafka section)")
	flag.IntVar(&maxPoll, "max-poll", 1000, "records per transaction at most (the loop's MaxPollRecords), for every EOS run")
	flag.StringVar(&kgoLogPrefix, "kgo-log", "", "write the tokenizer loops' franz-go debug logs to files with this prefix (diagnostics)")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the tokenizer throughput run to this file (go tool pprof)")
	flag.StringVar(&memProfile, "memprofile", "", "write an allocation profile of the tokenizer throughput run to this file (go tool pprof -sample_index=alloc_space)")
	flag.Parse()
	if *write != "" {
		abs, err := filepath.Abs(*write)
		if err != nil {
			log.Fatal(err)
		}
		*write = abs
	}
	md, err := run(*events, int32(*partitions), *latDur)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(md)
	if *write != "" {
		section := "tokenizer"
		if realKafka {
			section = "tokenizer-kafka"
		}
		if err := results.UpdateSection(*write, section, md); err != nil {
			log.Fatal(err)
		}
		log.Printf("updated %s", *write)
	}
}

var (
	maxPoll      int
	cpuProfile   string
	memProfile   string
	kgoLogPrefix string
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type bench struct {
	stack *devstack.Stack
	opts  []kgo.Opt
	srcl  *sr.Client
	parts int32
	seq   int
	quiet *slog.Logger
	// stateRoot holds the workers' state stores, removed at the end (a
	// tokenizer without --state-dir makes a temporary one per process
	// that only its Close removes).
	stateRoot string
}

// topics creates a fresh, suffixed set of topics with schemas registered.
func (b *bench) topics(ctx context.Context) (config.Topics, *schemas.Serde, error) {
	b.seq++
	d := config.DefaultTopics()
	s := fmt.Sprintf(".b%d", b.seq)
	tp := config.Topics{PaymentsRaw: d.PaymentsRaw + s, PaymentsTokenized: d.PaymentsTokenized + s, PaymentsDLQ: d.PaymentsDLQ + s,
		LogsRaw: d.LogsRaw + s, LogsSanitized: d.LogsSanitized + s, LogsDLQ: d.LogsDLQ + s, AuditEvents: d.AuditEvents + s,
		Vault: d.Vault + s, Idempotency: d.Idempotency + s}
	cl, err := kgo.NewClient(b.opts...)
	if err != nil {
		return tp, nil, err
	}
	defer cl.Close()
	spec, err := topology.Default(tp)
	if err != nil {
		return tp, nil, err
	}
	if _, err := topology.Apply(ctx, kadm.NewClient(cl), spec.WithPartitions(b.parts)); err != nil {
		return tp, nil, err
	}
	if _, err := schemas.Register(ctx, b.srcl, tp); err != nil {
		return tp, nil, err
	}
	serde, err := schemas.NewSerde(ctx, b.srcl, tp)
	return tp, serde, err
}

var cards = []string{"4111111111111111", "5555555555554444", "378282246310005", "6011111111111117", "3530111333300000"}

func payment(i int) *schemas.RawPayment {
	cvv := "123"
	name := "Bench Cardholder"
	return &schemas.RawPayment{
		PaymentID: fmt.Sprintf("pay-%d", i), IdempotencyKey: fmt.Sprintf("idem-%d", i), EventType: schemas.Authorization,
		PAN: cards[i%len(cards)], ExpiryMonth: 12, ExpiryYear: 2030, CVV: &cvv, CardholderName: &name,
		AmountMinor: int64(100 + i%5000), Currency: "EUR", MerchantID: "m-bench", OccurredAt: time.Now().UnixMilli(),
	}
}

// fill produces n encoded payments to the raw topic, keyed by idempotency key.
func (b *bench) fill(ctx context.Context, tp config.Topics, serde *schemas.Serde, n int) error {
	cl, err := kgo.NewClient(append(b.opts, kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(100000))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return produce.All(ctx, cl, n, func(i int) (*kgo.Record, error) {
		p := payment(i)
		v, err := serde.Encode(p)
		if err != nil {
			return nil, err
		}
		return &kgo.Record{Topic: tp.PaymentsRaw, Key: []byte(p.IdempotencyKey), Value: v}, nil
	})
}

// waitGroup waits until group has committed n input offsets on topic.
func (b *bench) waitGroup(ctx context.Context, group, topic string, n int64) error {
	cl, err := kgo.NewClient(b.opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		os, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			var sum int64
			os.Each(func(o kadm.OffsetResponse) {
				if o.Topic == topic {
					sum += o.At
				}
			})
			if sum >= n {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type result struct {
	name    string
	events  int
	wall    time.Duration
	cpu     time.Duration
	perSec  float64
	perCore float64
}

// timeRun runs start (which begins consuming tp.PaymentsRaw under group) and
// measures until n input offsets are committed.
func (b *bench) timeRun(ctx context.Context, name, group string, tp config.Topics, n int, start func(ctx context.Context) func()) (result, error) {
	runtime.GC()
	c0, t0 := cpuTime(), time.Now()
	ctx2, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	stop := start(ctx2)
	err := b.waitGroup(ctx2, group, tp.PaymentsRaw, int64(n))
	if err == nil && strings.HasPrefix(name, "tokenizer") {
		// The tokenizer routes every keyed payment through its repartition
		// topic (exact dedup across partitioners): done when that is
		// consumed too.
		err = b.waitGroup(ctx2, group, tp.RepartitionTopic(), int64(n))
	}
	wall, cpu := time.Since(t0), cpuTime()-c0
	stop()
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", name, err)
	}
	// Sanity: the output topic really holds at least n records.
	if cl, err := kgo.NewClient(b.opts...); err == nil {
		ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, tp.PaymentsTokenized)
		cl.Close()
		var sum int64
		ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
		if err != nil || sum < int64(n) {
			return result{}, fmt.Errorf("%s: output topic has %d records, want >= %d (%v)", name, sum, n, err)
		}
	}
	r := result{name: name, events: n, wall: wall, cpu: cpu, perSec: float64(n) / wall.Seconds(), perCore: float64(n) / cpu.Seconds()}
	log.Printf("%s: %d events in %s wall, %s CPU: %.0f events/s, %.0f events per CPU-second", name, n, wall.Round(time.Millisecond), cpu.Round(time.Millisecond), r.perSec, r.perCore)
	return r, nil
}

func (b *bench) runLoop(l *eos.Loop) func(ctx context.Context) func() {
	return func(ctx context.Context) func() {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { l.Run(ctx); close(done) }()
		return func() { cancel(); <-done }
	}
}

func (b *bench) newTokenizer(ctx context.Context, tp config.Topics, serde *schemas.Serde, kr *token.Keyring, group string) (*eos.Loop, error) {
	tk, err := tokenizer.New(kr, token.NewVault(kr), serde, tokenizer.Topics(tp), tokenizer.Logger(b.quiet),
		tokenizer.StateDir(filepath.Join(b.stateRoot, group)))
	if err != nil {
		return nil, err
	}
	return tokenizer.NewLoop(tk, b.opts, eos.Group(group), eos.TransactionalID(group), eos.Logger(b.quiet), eos.MaxPollRecords(maxPoll),
		eos.ClientOpts(b.kgoLog(group)...))
}

// kgoLog returns options logging the client's requests at debug level to
// <-kgo-log>.<name> (none without -kgo-log), to find where a stage waits.
func (b *bench) kgoLog(name string) []kgo.Opt {
	if kgoLogPrefix == "" {
		return nil
	}
	f, err := os.Create(kgoLogPrefix + "." + name)
	if err != nil {
		log.Fatal(err)
	}
	return []kgo.Opt{kgo.WithLogger(kgo.BasicLogger(f, kgo.LogLevelDebug, func() string { return time.Now().Format("15:04:05.000000 ") }))}
}

func run(n int, parts int32, latDur time.Duration) (string, error) {
	ctx := context.Background()
	sopts := []devstack.Opt{devstack.WithoutS3(), devstack.DefaultPartitions(parts)}
	if realKafka {
		sopts = append(sopts, devstack.RealKafkaWith(kafkabroker.Options{FullJIT: true}))
	}
	stack, err := devstack.Start(ctx, sopts...)
	if err != nil {
		return "", err
	}
	defer stack.Close()
	srcl, err := sr.NewClient(sr.URLs(stack.RegistryURL))
	if err != nil {
		return "", err
	}
	b := &bench{stack: stack, opts: []kgo.Opt{kgo.SeedBrokers(stack.KafkaAddrs...)}, srcl: srcl, parts: parts,
		quiet: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))}
	if b.stateRoot, err = os.MkdirTemp("", "bench-tokenizer-state-"); err != nil {
		return "", err
	}
	defer os.RemoveAll(b.stateRoot)
	kr, err := token.NewKeyring()
	if err != nil {
		return "", err
	}

	var results []result
	// 1. Baseline: non-transactional, at-least-once passthrough (consumer
	// group, idempotent producer, offsets committed after each flushed
	// poll), same broker, same records.
	{
		tp, serde, err := b.topics(ctx)
		if err != nil {
			return "", err
		}
		if err := b.fill(ctx, tp, serde, n); err != nil {
			return "", err
		}
		group := "bench-plain"
		r, err := b.timeRun(ctx, "passthrough, no transactions (flush, then commit offsets)", group, tp, n, func(ctx context.Context) func() {
			ctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				cl, err := kgo.NewClient(append(b.opts, kgo.ConsumerGroup(group), kgo.ConsumeTopics(tp.PaymentsRaw),
					kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
				if err != nil {
					log.Fatal(err)
				}
				defer cl.Close()
				for ctx.Err() == nil {
					fs := cl.PollRecords(ctx, 1000)
					fs.EachRecord(func(r *kgo.Record) {
						cl.Produce(ctx, &kgo.Record{Topic: tp.PaymentsTokenized, Key: r.Key, Value: r.Value}, nil)
					})
					// At-least-once: outputs flushed, then offsets committed.
					if cl.Flush(ctx) == nil {
						cl.CommitUncommittedOffsets(ctx)
					}
				}
			}()
			return func() { cancel(); <-done }
		})
		if err != nil {
			return "", err
		}
		results = append(results, r)
	}
	// 2. Baseline: transactional passthrough on the same EOS loop.
	{
		tp, serde, err := b.topics(ctx)
		if err != nil {
			return "", err
		}
		if err := b.fill(ctx, tp, serde, n); err != nil {
			return "", err
		}
		group := "bench-eos"
		l, err := eos.New(eos.ProcessorFunc(func(_ context.Context, r *kgo.Record, out *eos.Out) error {
			out.Emit(&kgo.Record{Topic: tp.PaymentsTokenized, Key: r.Key, Value: r.Value})
			return nil
		}), eos.Name("passthrough"), eos.Topics(tp.PaymentsRaw), eos.Group(group), eos.TransactionalID(group),
			eos.ClientOpts(b.opts...), eos.Logger(b.quiet), eos.MaxPollRecords(maxPoll))
		if err != nil {
			return "", err
		}
		r, err := b.timeRun(ctx, "passthrough, EOS loop (transactions)", group, tp, n, b.runLoop(l))
		if err != nil {
			return "", err
		}
		results = append(results, r)
	}
	// 3. The tokenizer.
	var tokTP config.Topics
	{
		tp, serde, err := b.topics(ctx)
		if err != nil {
			return "", err
		}
		tokTP = tp
		if err := b.fill(ctx, tp, serde, n); err != nil {
			return "", err
		}
		group := "bench-tokenizer"
		l, err := b.newTokenizer(ctx, tp, serde, kr, group)
		if err != nil {
			return "", err
		}
		stopProf, err := startProfile(cpuProfile, memProfile)
		if err != nil {
			return "", err
		}
		r, err := b.timeRun(ctx, "tokenizer (EOS, repartition + 4 records out per event)", group, tp, n, b.runLoop(l))
		stopProf()
		if err != nil {
			return "", err
		}
		results = append(results, r)
	}
	_ = tokTP
	tok := results[2]

	// 4. Latency at half the measured maximum (wall) rate.
	rate := tok.perSec / 2
	lat, err := b.latencies(ctx, kr, rate, latDur)
	if err != nil {
		return "", err
	}
	return report(results, rate, lat, n, parts, latDur), nil
}

// watch is a topic whose records' produce-to-visible latency a latency run
// records (the records carry the input's timestamp).
type watch struct {
	label     string
	topic     string
	committed bool // read_committed (else read_uncommitted)
}

// latRun is one paced latency run: the latencies seen at each watch.
type latRun struct {
	name     string
	achieved float64
	labels   []string
	lats     map[string][]time.Duration
}

// latency runs start (a pipeline from tp.PaymentsRaw whose last watch is its
// output) and a paced producer at rate events/s for d, and records for each
// event the time from its produce call (the record timestamp, carried to
// every stage) to its arrival at each watch. The last watch must see every
// event.
func (b *bench) latency(ctx context.Context, name string, tp config.Topics, serde *schemas.Serde, start func(context.Context) func(),
	watches []watch, rate float64, d time.Duration) (latRun, error) {
	run := latRun{name: name, lats: map[string][]time.Duration{}}
	stopLoop := start(ctx)
	defer stopLoop()
	// The input producer does not linger: a webhook gateway sends each
	// event as it comes (kgo's default linger of 10 ms would be counted
	// as pipeline latency otherwise).
	prod, err := kgo.NewClient(append(b.opts, kgo.ProducerLinger(0))...)
	if err != nil {
		return run, err
	}
	defer prod.Close()
	final := watches[len(watches)-1]
	cons := make([]*kgo.Client, len(watches))
	for i, w := range watches {
		o := append(b.opts, kgo.ConsumeTopics(w.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
		if w.committed {
			o = append(o, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		}
		if cons[i], err = kgo.NewClient(o...); err != nil {
			return run, err
		}
		defer cons[i].Close()
		run.labels = append(run.labels, w.label)
	}

	// Warm up: wait until the pipeline has joined and passed one event.
	warm := payment(1 << 30)
	wv, _ := serde.Encode(warm)
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: tp.PaymentsRaw, Key: []byte(warm.IdempotencyKey), Value: wv}).FirstErr(); err != nil {
		return run, err
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	for got := false; !got; {
		fs := cons[len(cons)-1].PollFetches(wctx)
		if wctx.Err() != nil {
			wcancel()
			return run, fmt.Errorf("latency warm-up: %s produced nothing", name)
		}
		got = fs.NumRecords() > 0
	}
	wcancel()

	// Pre-encode the values (encoding is the producer's cost, not the pipeline's).
	total := int(rate * d.Seconds())
	vals := make([][]byte, total)
	keys := make([][]byte, total)
	for i := range vals {
		p := payment(i)
		vals[i], _ = serde.Encode(p)
		keys[i] = []byte(p.IdempotencyKey)
	}
	var mu sync.Mutex
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	paced := time.Now()
	var wg sync.WaitGroup
	finalDone := make(chan struct{})
	for i, w := range watches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w == final {
				defer close(finalDone)
			}
			n := 0
			for n < total && cctx.Err() == nil {
				fs := cons[i].PollFetches(cctx)
				now := time.Now()
				fs.EachRecord(func(r *kgo.Record) {
					if r.Timestamp.Before(paced) {
						return // the warm-up event
					}
					n++
					mu.Lock()
					run.lats[w.label] = append(run.lats[w.label], now.Sub(r.Timestamp))
					mu.Unlock()
				})
			}
		}()
	}
	begin := time.Now()
	perTick := rate / 1000
	sent, acc := 0, 0.0
	tick := time.NewTicker(time.Millisecond)
	for sent < total {
		<-tick.C
		acc += perTick
		for acc >= 1 && sent < total {
			prod.Produce(ctx, &kgo.Record{Topic: tp.PaymentsRaw, Key: keys[sent], Value: vals[sent], Timestamp: time.Now()}, nil)
			sent++
			acc--
		}
	}
	tick.Stop()
	run.achieved = float64(sent) / time.Since(begin).Seconds()
	select {
	case <-finalDone:
	case <-time.After(30 * time.Second):
	}
	ccancel()
	wg.Wait()
	if got := len(run.lats[final.label]); got < total {
		return run, fmt.Errorf("latency %s: %d of %d events visible after 30 s", name, got, total)
	}
	l := run.lats[final.label]
	log.Printf("latency %s: p50 %s p99 %s (%d events, %.0f/s)", name, pct(l, 0.5), pct(l, 0.99), len(l), run.achieved)
	return run, nil
}

// latencies runs the tokenizer and, as floors on the same broker at the
// same rate, an EOS passthrough with one transactional hop and one with the
// tokenizer's two (input -> repartition topic -> output, one loop).
func (b *bench) latencies(ctx context.Context, kr *token.Keyring, rate float64, d time.Duration) ([]latRun, error) {
	var runs []latRun
	for i, name := range []string{"EOS passthrough, one hop", "EOS passthrough, two hops (the tokenizer's topology)", "tokenizer"} {
		tp, serde, err := b.topics(ctx)
		if err != nil {
			return nil, err
		}
		group := fmt.Sprintf("bench-latency-%d", i)
		out := watch{"output (read_committed)", tp.PaymentsTokenized, true}
		mid := watch{"repartition topic (read_committed)", tp.RepartitionTopic(), true}
		var l *eos.Loop
		var ws []watch
		switch i {
		case 0:
			l, err = b.passthrough(group, tp.PaymentsTokenized, tp.PaymentsRaw)
			ws = []watch{out}
		case 1:
			l, err = b.passthrough(group, tp.PaymentsTokenized, tp.PaymentsRaw, tp.RepartitionTopic())
			ws = []watch{mid, out}
		default:
			l, err = b.newTokenizer(ctx, tp, serde, kr, group)
			ws = []watch{{"input (plain consumer: the broker's floor)", tp.PaymentsRaw, false}, mid, out}
		}
		if err != nil {
			return nil, err
		}
		r, err := b.latency(ctx, name, tp, serde, b.runLoop(l), ws, rate, d)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// passthrough is an EOS loop copying its first input topic to its second
// input topic if there is one (keyed alike, like the tokenizer's route
// step), and the second to out; with one input, straight to out. Records
// keep the input's timestamp.
func (b *bench) passthrough(group, out string, in ...string) (*eos.Loop, error) {
	return eos.New(eos.ProcessorFunc(func(_ context.Context, r *kgo.Record, o *eos.Out) error {
		to := out
		if len(in) > 1 && r.Topic == in[0] {
			to = in[1]
		}
		o.Emit(&kgo.Record{Topic: to, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp})
		return nil
	}), eos.Name("passthrough"), eos.Topics(in...), eos.Group(group), eos.TransactionalID(group),
		eos.ClientOpts(b.opts...), eos.ClientOpts(b.kgoLog(group)...), eos.Logger(b.quiet), eos.MaxPollRecords(maxPoll))
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func report(rs []result, rate float64, lat []latRun, n int, parts int32, latDur time.Duration) string {
	var sb strings.Builder
	tok := rs[2]
	final := lat[len(lat)-1]
	lats := final.lats[final.labels[len(final.labels)-1]]
	p50, p99 := pct(lats, 0.50), pct(lats, 0.99)
	where, flagS := "the embedded broker", ""
	if realKafka {
		where, flagS = "real Apache Kafka 4.4.0 (1 KRaft node, same machine, separate JVM)", " -real-kafka"
	}
	fmt.Fprintf(&sb, "## Tokenizer (`processors/tokenizer`), end to end through %s\n\n", where)
	fmt.Fprintf(&sb, "Machine: %s, %d cores visible (`nproc`), shared with other jobs; %s %s/%s. Date: %s.\n",
		cpuModel(), runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&sb, "Command: `go run ./bench/tokenizer%s -events %d -partitions %d -latency-duration %s -max-poll %d -write bench/RESULTS.md`.\n\n", flagS, n, parts, latDur, maxPoll)
	if realKafka {
		fmt.Fprintf(&sb, "One process holds the schema registry, the producer of the input (before timing starts), the worker\n")
		fmt.Fprintf(&sb, "and the offset poller; the broker is a separate JVM on the same 2 cores. \"per core\" = events /\n")
		fmt.Fprintf(&sb, "CPU-seconds of this process (the broker's CPU is not counted). Each event")
	} else {
		fmt.Fprintf(&sb, "One process holds everything: kfake broker (transactions on), schema registry, producer of the input\n")
		fmt.Fprintf(&sb, "(before timing starts), the worker, and the offset poller. \"per core\" = events / CPU-seconds of\n")
		fmt.Fprintf(&sb, "the whole process (broker included) during the run, from getrusage; a worker against a real cluster\n")
		fmt.Fprintf(&sb, "would not pay the broker's share. Each event")
	}
	fmt.Fprintf(&sb, " is an Avro payment with a unique idempotency key; the\n")
	fmt.Fprintf(&sb, "tokenizer writes 5 records per event (the payment re-keyed onto its repartition topic, then the\n")
	fmt.Fprintf(&sb, "tokenized event, vault entry with a fresh AES-KW-wrapped data key, audit event, idempotency entry\n")
	fmt.Fprintf(&sb, "in its Pebble state store's changelog) in transactions of up to %d input records with the offsets.\n\n", maxPoll)
	fmt.Fprintf(&sb, "| run | events | wall | CPU | events/s (wall) | events per CPU-second | tokenizer vs this |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		fmt.Fprintf(&sb, "| %s | %d | %s | %s | %.0f | %.0f | %.2f |\n", r.name, r.events, r.wall.Round(time.Millisecond), r.cpu.Round(time.Millisecond), r.perSec, r.perCore, tok.perCore/r.perCore)
	}
	fmt.Fprintf(&sb, "\nLatency, produce call to visible (the input producer runs with linger 0; every stage's record carries\n")
	fmt.Fprintf(&sb, "the input's timestamp), with the producer paced at half the tokenizer's measured wall-clock maximum\n")
	fmt.Fprintf(&sb, "(%.0f events/s) for %s, for the tokenizer and, as floors on the same broker at the same rate, an EOS\n", rate, latDur)
	fmt.Fprintf(&sb, "passthrough on the same loop with one transactional hop and one with the tokenizer's two (input ->\n")
	fmt.Fprintf(&sb, "repartition topic -> output in one loop, no processing):\n\n")
	fmt.Fprintf(&sb, "| run | achieved events/s | stage | events | p50 | p99 | max |\n|---|---:|---|---:|---:|---:|---:|\n")
	for _, r := range lat {
		for _, label := range r.labels {
			l := r.lats[label]
			if len(l) == 0 {
				continue
			}
			fmt.Fprintf(&sb, "| %s | %.0f | %s | %d | %s | %s | %s |\n", r.name, r.achieved, label, len(l), ms(pct(l, 0.5)), ms(pct(l, 0.99)), ms(pct(l, 1)))
		}
	}
	fmt.Fprintf(&sb, "\nTokenizer, produce call to visible at a read_committed consumer of its output: **p50 %s, p99 %s**.\n", ms(p50), ms(p99))
	fmt.Fprintf(&sb, "Load average (1/5/15 min) when the report was written: %s.\n\n", loadAvg())
	fmt.Fprintf(&sb, "| metric | measured | published reference | ratio | target | met |\n|---|---:|---:|---:|---:|---|\n")
	fmt.Fprintf(&sb, "| events/s per core | %.0f | 1,200 TPS per vCPU | %.1fx | >= 20,000 | %s |\n", tok.perCore, tok.perCore/refTPSPerVCPU, yes(tok.perCore >= 20000))
	fmt.Fprintf(&sb, "| p99 latency at half max rate | %s | 12 ms | %.2fx | < 12 ms | %s |\n\n", p99.Round(10*time.Microsecond), float64(p99)/float64(refP99), yes(p99 < refP99))
	return sb.String()
}

// ms formats d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// startProfile starts a CPU profile into path (none when path is empty)
// and returns its stop function.
func startProfile(path, memPath string) (func(), error) {
	stopMem := func() {}
	if memPath != "" {
		// Sampled from here on (the passthrough runs before allocate
		// little); the profile is cumulative, written at the run's end.
		runtime.MemProfileRate = 64 << 10
		stopMem = func() {
			f, err := os.Create(memPath)
			if err != nil {
				log.Printf("memory profile: %v", err)
				return
			}
			defer f.Close()
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				log.Printf("memory profile: %v", err)
			}
		}
	}
	if path == "" {
		return stopMem, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close(); stopMem() }, nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return "unknown CPU"
}
