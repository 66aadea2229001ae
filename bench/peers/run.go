package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/pcistream/pcistream/bench/internal/produce"
	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/kafkabroker"
	"github.com/pcistream/pcistream/schemas"
)

type runOpts struct {
	records    int
	partitions int32
	latDur     time.Duration
	only       string
	loads      []float64
}

// Results is one run of the whole comparison.
type Results struct {
	Date, Machine, Kafka, Command string
	LoadAvg                       string // /proc/loadavg at the end: the machine is shared
	Records, Partitions           int
	LatencySeconds                float64
	Contenders                    []Result
}

// Result is one contender's numbers.
type Result struct {
	Key, Name, Guarantee string
	PerSec               float64 // records/s, wall clock, steady state
	PerCore              float64 // records per CPU-second of the contender's process
	Cores                float64 // CPU-seconds per wall second of the contender
	BrokerCores          float64 // the broker's CPU-seconds per wall second meanwhile
	RSSMB                float64 // the contender's peak RSS (VmHWM)
	Latency              []LatPoint
}

// LatPoint is produce-to-visible latency at a fraction of capacity.
type LatPoint struct {
	Load, Target, Achieved float64
	P50ms, P99ms, MaxMs    float64
	N, Missing             int    // records measured, records never visible
	Err                    string // why the run is incomplete, if it is
}

type contender struct {
	key, name, guarantee string
	start                func(in, out, sfx, group string) (*proc, error)
}

type driver struct {
	o      runOpts
	st     *devstack.Stack
	opts   []kgo.Opt
	srcl   *sr.Client
	root   string
	self   string
	libsCP string
}

func run(ctx context.Context, o runOpts) (*Results, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	log.Printf("building the Kafka Streams peer (mvn, bench/streams)")
	mvn := exec.CommandContext(ctx, "mvn", "-q", "-B", "-f", filepath.Join(root, "bench/streams/pom.xml"), "package", "dependency:copy-dependencies")
	if b, err := mvn.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build bench/streams: %w: %s", err, b)
	}
	log.Printf("starting Apache Kafka")
	st, err := devstack.Start(ctx, devstack.WithoutS3(), devstack.RealKafkaWith(kafkabroker.Options{FullJIT: true}), devstack.DefaultPartitions(o.partitions))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	srcl, err := sr.NewClient(sr.URLs(st.RegistryURL))
	if err != nil {
		return nil, err
	}
	self, _ := os.Executable()
	d := &driver{o: o, st: st, opts: []kgo.Opt{kgo.SeedBrokers(st.KafkaAddrs...)}, srcl: srcl, root: root, self: self,
		libsCP: filepath.Join(root, "bench/streams/target/classes") + ":" + filepath.Join(root, "bench/streams/target/libs/*")}
	res := &Results{Date: time.Now().UTC().Format("2006-01-02 15:04 MST"), Machine: machine(), Kafka: "Apache Kafka 4.4.0 (kafka_2.13, KRaft, 1 node, JVM -Xmx512m)",
		Command: strings.Join(append([]string{"go run ./bench/peers"}, os.Args[1:]...), " "),
		Records: o.records, Partitions: int(o.partitions), LatencySeconds: o.latDur.Seconds()}

	in := "logs.raw.peers.input"
	if err := d.createTopics(ctx, in); err != nil {
		return nil, err
	}
	log.Printf("producing %d log lines to %s", o.records, in)
	if err := d.fill(ctx, in, o.records); err != nil {
		return nil, err
	}
	for _, c := range d.contenders() {
		if !slices.Contains(strings.Split(o.only, ","), c.key) {
			continue
		}
		r, err := d.measure(ctx, c, in)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		res.Contenders = append(res.Contenders, r)
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return res, nil
}

func (d *driver) contenders() []contender {
	goChild := func(kind string) func(in, out, sfx, group string) (*proc, error) {
		return func(in, out, sfx, group string) (*proc, error) {
			return startProc(exec.Command(d.self, "-child", kind, "-broker", d.st.KafkaAddrs[0], "-registry", d.st.RegistryURL,
				"-in", in, "-out", out, "-suffix", sfx, "-group", group))
		}
	}
	streams := func(guarantee string) func(in, out, sfx, group string) (*proc, error) {
		return func(in, out, _, group string) (*proc, error) {
			return startProc(exec.Command("java", "-Xmx512m", "-XX:+UseG1GC", "-cp", d.libsCP, "io.pcistream.bench.MaskStreams",
				d.st.KafkaAddrs[0], in, out, group, guarantee))
		}
	}
	return []contender{
		{"masker", "pcistream masker (pan.Detector, shared EOS loop)", "exactly once (transactions)", goChild("masker")},
		{"streams-eos", "Kafka Streams 4.4.0, published regexp + Luhn", "exactly_once_v2", streams("exactly_once_v2")},
		{"plain", "hand-written franz-go loop, Go regexp + Luhn", "at least once (no transactions)", goChild("plain")},
		{"streams-alo", "Kafka Streams 4.4.0, published regexp + Luhn", "at_least_once", streams("at_least_once")},
	}
}

// measure runs c's throughput run on the shared input, then its latency
// runs at 50% and 90% of the capacity measured.
func (d *driver) measure(ctx context.Context, c contender, in string) (Result, error) {
	r := Result{Key: c.key, Name: c.name, Guarantee: c.guarantee}
	sfx := ".peers." + c.key
	out := "logs.sanitized" + sfx
	if err := d.prepare(ctx, c, in, out, sfx); err != nil {
		return r, err
	}
	group := "peers-" + c.key
	p, err := c.start(in, out, sfx, group)
	if err != nil {
		return r, err
	}
	err = d.throughput(ctx, p, group, in, &r)
	p.stop()
	if err != nil {
		return r, err
	}
	log.Printf("%s: %.0f records/s, %.0f per CPU-second, %.2f cores, broker %.2f cores, RSS %.0f MB", c.key, r.PerSec, r.PerCore, r.Cores, r.BrokerCores, r.RSSMB)
	for _, load := range d.o.loads {
		lp, err := d.latency(ctx, c, load, r.PerSec*load)
		if err != nil {
			lp.Err = err.Error()
			log.Printf("%s at %.0f%%: %v", c.key, load*100, err)
		}
		log.Printf("%s at %.0f%% (%.0f/s): p50 %.1f ms, p99 %.1f ms", c.key, load*100, lp.Achieved, lp.P50ms, lp.P99ms)
		r.Latency = append(r.Latency, lp)
	}
	return r, nil
}

// prepare creates a run's output topics and, for the masker, its DLQ and
// audit topics and their schemas.
func (d *driver) prepare(ctx context.Context, c contender, in, out, sfx string) error {
	names := []string{in, out}
	if c.key == "masker" {
		tp := maskerTopics(in, out, sfx)
		names = append(names, tp.LogsDLQ, tp.AuditEvents)
		if _, err := schemas.Register(ctx, d.srcl, tp); err != nil {
			return err
		}
	}
	return d.createTopics(ctx, names...)
}

func (d *driver) createTopics(ctx context.Context, names ...string) error {
	cl, err := kgo.NewClient(d.opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	rs, err := kadm.NewClient(cl).CreateTopics(ctx, d.o.partitions, 1, nil, names...)
	if err != nil {
		return err
	}
	for _, r := range rs.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// throughput waits until p's group has committed every input offset and
// measures from its first commit (so start-up and group join are not
// counted) to its last.
func (d *driver) throughput(ctx context.Context, p *proc, group, in string, r *Result) error {
	cl, err := kgo.NewClient(d.opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	bpid := d.st.Broker.Pid()
	var t0 time.Time
	var s0 int64
	var c0, b0 time.Duration
	for {
		select {
		case <-p.done:
			return fmt.Errorf("contender exited: %s", p.tail())
		case <-ctx.Done():
			return fmt.Errorf("timed out: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			continue
		}
		var sum int64
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == in {
				sum += o.At
			}
		})
		now, cpu, bcpu := time.Now(), procCPU(p.pid()), procCPU(bpid)
		if sum > 0 && t0.IsZero() {
			t0, s0, c0, b0 = now, sum, cpu, bcpu
			continue
		}
		if sum >= int64(d.o.records) {
			wall := now.Sub(t0).Seconds()
			n := float64(sum - s0)
			r.PerSec, r.PerCore = n/wall, n/(cpu-c0).Seconds()
			r.Cores, r.BrokerCores = (cpu-c0).Seconds()/wall, (bcpu-b0).Seconds()/wall
			r.RSSMB = procHWM(p.pid())
			return nil
		}
	}
}

// latency runs c on fresh topics with a producer paced at rate for the
// run's duration, and measures each record's produce call to its arrival
// at a read_committed consumer of the output (the output carries the
// input's timestamp in every contender).
func (d *driver) latency(ctx context.Context, c contender, load, rate float64) (LatPoint, error) {
	lp := LatPoint{Load: load, Target: rate}
	sfx := fmt.Sprintf(".peers.%s.l%.0f", c.key, load*100)
	in, out := "logs.raw"+sfx, "logs.sanitized"+sfx
	if err := d.prepare(ctx, c, in, out, sfx); err != nil {
		return lp, err
	}
	p, err := c.start(in, out, sfx, "peers-lat"+sfx)
	if err != nil {
		return lp, err
	}
	defer p.stop()
	cons, err := kgo.NewClient(append(d.opts, kgo.ConsumeTopics(out), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))...)
	if err != nil {
		return lp, err
	}
	defer cons.Close()
	prod, err := kgo.NewClient(append(d.opts, kgo.ProducerLinger(0), kgo.DefaultProduceTopic(in))...)
	if err != nil {
		return lp, err
	}
	defer prod.Close()
	if err := warmUp(ctx, prod, cons, p); err != nil {
		return lp, err
	}
	total := int(rate * d.o.latDur.Seconds())
	vals := make([][]byte, total)
	for i := range vals {
		vals[i] = logLine(i)
	}
	var lats []time.Duration
	var mu sync.Mutex
	done := make(chan struct{})
	cctx, ccancel := context.WithCancel(ctx)
	go func() {
		defer close(done)
		for cctx.Err() == nil {
			fs := cons.PollFetches(cctx)
			now := time.Now()
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { lats = append(lats, now.Sub(r.Timestamp)) })
			n := len(lats)
			mu.Unlock()
			if n >= total {
				return
			}
		}
	}()
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	sent, acc := 0, 0.0
	last := start
	for sent < total {
		now := <-tick.C
		acc += rate * now.Sub(last).Seconds()
		last = now
		for acc >= 1 && sent < total {
			prod.Produce(ctx, &kgo.Record{Value: vals[sent], Timestamp: time.Now()}, nil)
			sent++
			acc--
		}
	}
	tick.Stop()
	lp.Achieved = float64(sent) / time.Since(start).Seconds()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
	}
	ccancel()
	<-done
	if len(lats) == 0 {
		return lp, fmt.Errorf("no record visible 60 s after the last produce")
	}
	// Records never seen count as slower than any seen: percentiles are
	// over every record produced.
	lp.Missing = max(total-len(lats), 0)
	for range lp.Missing {
		lats = append(lats, time.Hour)
	}
	slices.Sort(lats)
	ms := func(q float64) float64 { return float64(lats[int(float64(len(lats)-1)*q)]) / 1e6 }
	lp.P50ms, lp.P99ms, lp.MaxMs, lp.N = ms(0.5), ms(0.99), ms(1), len(lats)
	if lp.Missing > 0 {
		return lp, fmt.Errorf("%d of %d records not visible 60 s after the last produce", lp.Missing, total)
	}
	return lp, nil
}

// warmUp produces one record and waits for it at the output, so the run
// starts with the contender joined and its producer initialised.
func warmUp(ctx context.Context, prod, cons *kgo.Client, p *proc) error {
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("warm-up"), Timestamp: time.Now()}).FirstErr(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		fs := cons.PollFetches(wctx)
		if fs.NumRecords() > 0 {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("contender exited during warm-up: %s", p.tail())
		default:
		}
		if wctx.Err() != nil {
			return fmt.Errorf("warm-up record not processed within 3 minutes")
		}
	}
}

// fill produces n log lines (one in ten carries a PAN).
func (d *driver) fill(ctx context.Context, topic string, n int) error {
	cl, err := kgo.NewClient(append(d.opts, kgo.DefaultProduceTopic(topic), kgo.MaxBufferedRecords(100000))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return produce.All(ctx, cl, n, func(i int) (*kgo.Record, error) {
		return &kgo.Record{Value: logLine(i)}, nil
	})
}

var cards = []string{"4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005", "6011111111111117", "3530 1113 3330 0000"}

// logLine is a payment service's log line with the digits real logs carry
// (timestamps, ids, amounts, latencies); one line in ten holds a test PAN.
func logLine(i int) []byte {
	ts := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
	s := fmt.Sprintf("%s level=info svc=payments-api trace=%016x span=%08x req=ord-%09d amount=%d.%02d EUR latency_ms=%d msg=\"authorization approved\"",
		ts.Format("2006-01-02T15:04:05.000Z"), uint64(i)*2654435761, i*40503, i*7, i%5000, i%100, 3+i%250)
	if i%10 == 3 {
		s += " card=" + cards[i%len(cards)]
	}
	return []byte(s)
}

// proc is a contender's process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	out  *tailBuf
}

func startProc(cmd *exec.Cmd) (*proc, error) {
	tb := &tailBuf{}
	cmd.Stdout, cmd.Stderr = tb, tb
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), out: tb}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) tail() string { return p.out.String() }

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tailBuf keeps the last 4 KiB a process wrote.
type tailBuf struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuf) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuf) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// procCPU is a process's user+system CPU time from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * (time.Second / 100) // USER_HZ is 100 on Linux
}

// procHWM is a process's peak resident set in MB (VmHWM).
func procHWM(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run from inside the pcistream repository (no go.mod above %s)", dir)
		}
		dir = parent
	}
}
