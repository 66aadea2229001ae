// Command state benchmarks the tokenizer's idempotency state (internal/state)
// and the vault index used by detokenize, at sizes where the old in-memory
// design could not go:
//
//   - fresh restore: a new worker restores N idempotency entries from the
//     changelog topic (embedded kfake broker, transactional records, read
//     committed; -partitions of them, 3 by default as in topology/topics.yaml,
//     all restored at once as by a worker assigned them) into an empty
//     store: keys/s;
//   - warm restart after SIGKILL: a child process holding the store is
//     killed without warning, the changelog gets a tail, and a new child
//     opens the store and replays only the tail: seconds to ready;
//   - RSS of the restarted child after the restore and 200k lookups, with a
//     64 MiB block cache, and per-key costs (lookup hit, lookup miss,
//     transaction-sized apply);
//   - detokenize lookups through the vault index holding N entries: p50/p99.
//
// Stores above -kafka-max keys are built directly in Pebble (sorted batches,
// checkpoint set to the changelog's end) instead of restored from the
// broker, which holds everything in memory; fresh restore is then measured
// at the sizes that fit.
//
//	go run ./bench/state -keys 1000000,10000000 -write bench/RESULTS.md
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/kafkabroker"
	"github.com/pcistream/pcistream/internal/state"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/processors/tokenizer"
	"github.com/pcistream/pcistream/schemas"
)

const (
	beginMarker = "<!-- state:begin -->"
	endMarker   = "<!-- state:end -->"
	changelog   = "bench.state.changelog"
	tailRecords = 10000
	cacheBytes  = 64 << 20
)

func main() {
	var (
		keysFlag  = flag.String("keys", "1000000,10000000", "store sizes, comma separated")
		kafkaMax  = flag.Int("kafka-max", 10_000_000, "largest size restored from the broker; larger stores are built directly (Store.Ingest)")
		realKafka = flag.Bool("real-kafka", false, "restore from a real Apache Kafka broker (a JVM, package kafkabroker) instead of kfake")
		baseline  = flag.Bool("baseline", true, "also restore the smallest size through batches (the pre-bulk path) for a ratio")
		detokMax  = flag.Int("detok-max", 1<<62, "largest vault index built for the detokenize measurement")
		dir       = flag.String("dir", "", "work directory (default a temporary one; needs ~120 bytes of disk per key)")
		write     = flag.String("write", "", "update the state section of this RESULTS.md")
		child     = flag.String("child", "", "internal: child mode (hold|restart)")
		brokers   = flag.String("brokers", "", "internal: child's broker")
		store     = flag.String("store", "", "internal: child's store directory")
		cpuProf   = flag.String("cpuprofile", "", "write a CPU profile of each fresh restore (the restoring child) to this file (suffixed with the key count)")
		cleanup   = flag.String("cleanup", "compact,delete", "cleanup.policy of the benchmark's changelogs (the topology's; \"delete\" keeps a real broker's log cleaner from compacting the freshly written changelog on the same cores while it is restored)")
		parts     = flag.Int("partitions", 3, "changelog partitions (3: topology/topics.yaml's default): keys spread round-robin, restored concurrently into one store, as by a worker assigned them all (sizes built directly use one)")
		traceOut  = flag.String("trace", "", "write an execution trace of each fresh restore (the restoring child) to this file (suffixed with the key count): `go tool trace` shows which phases overlap")
	)
	flag.Parse()
	if *child != "" {
		os.Exit(runChild(*child, *brokers, *store))
	}
	var sizes []int
	for _, s := range strings.Split(*keysFlag, ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			log.Fatalf("-keys: %v", err)
		}
		sizes = append(sizes, int(f))
	}
	work := *dir
	if work == "" {
		d, err := os.MkdirTemp("", "bench-state-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		work = d
	}
	out, err := run(sizes, opts{kafkaMax: *kafkaMax, realKafka: *realKafka, baseline: *baseline, detokMax: *detokMax, cpuProfile: *cpuProf, trace: *traceOut, partitions: max(*parts, 1), cleanup: *cleanup}, work)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out)
	if *write != "" {
		if err := splice(*write, out); err != nil {
			log.Fatal(err)
		}
	}
}

type opts struct {
	kafkaMax  int
	realKafka bool
	baseline  bool
	detokMax  int
	// cpuProfile: where the hold child writes a CPU profile of its restore.
	cpuProfile string
	// trace: where the hold child writes an execution trace of its restore.
	trace string
	// partitions of the changelogs restored from Kafka.
	partitions int
	// cleanup is the changelogs' cleanup.policy.
	cleanup string
}

type result struct {
	keys                         int
	fromKafka                    bool
	produce, fresh               time.Duration
	freshRate, freshCPURate      float64
	settledRate, settledCPURate  float64 // including the compactions the restore left
	batchRate, batchCPURate      float64 // baseline: the same restore through batches
	build                        time.Duration
	buildRate, buildCPURate      float64 // store only: Store.Ingest of generated entries
	load                         string
	warm                         time.Duration
	warmTail                     int64
	rssKB                        int64
	diskBytes                    int64
	getHit, getMiss, applyPerKey time.Duration
	detokP50, detokP99, detokMax time.Duration
	detokN                       int
}

func run(sizes []int, o opts, work string) (string, error) {
	ctx := context.Background()
	sopts := []devstack.Opt{devstack.WithoutS3()}
	if o.realKafka {
		sopts = append(sopts, devstack.RealKafkaWith(kafkabroker.Options{FullJIT: true}))
	}
	stack, err := devstack.Start(ctx, sopts...)
	if err != nil {
		return "", err
	}
	defer stack.Close()
	opts := []kgo.Opt{kgo.SeedBrokers(stack.KafkaAddrs...)}
	var res []result
	for i, n := range sizes {
		r := result{keys: n}
		topic := changelog + "." + strconv.Itoa(i)
		sdir := filepath.Join(work, "idem-"+strconv.Itoa(n))
		r.fromKafka = n <= o.kafkaMax
		parts := 1
		if r.fromKafka {
			parts = o.partitions
		}
		os.Setenv("BENCH_STATE_PARTITIONS", strconv.Itoa(parts))
		if err := createTopic(ctx, opts, topic, parts, o.cleanup); err != nil {
			return "", err
		}
		// Store only: the bulk path without Kafka, into the store the
		// children use when the changelog cannot hold n entries.
		bdir := sdir
		if r.fromKafka {
			bdir = filepath.Join(work, "build-"+strconv.Itoa(n))
		}
		// Stores only built directly take keys in sorted order, so each
		// chunk lands below the last one (no compaction): how a 100M
		// store is built in minutes. Measured builds use random keys.
		if err := buildDirect(bdir, n, !r.fromKafka, &r); err != nil {
			return "", err
		}
		log.Printf("%d keys: store built directly (Store.Ingest) in %s: %.0f keys/s, %.0f keys per CPU-second",
			n, r.build.Round(time.Millisecond), r.buildRate, r.buildCPURate)
		if r.fromKafka {
			os.RemoveAll(bdir)
			t0 := time.Now()
			if err := produceEntries(ctx, opts, topic, parts, 0, n, false); err != nil {
				return "", err
			}
			r.produce = time.Since(t0)
			log.Printf("%d keys: produced to the changelog in %s", n, r.produce.Round(time.Millisecond))
			if o.baseline && i == 0 {
				hr, err := holdChild(stack.KafkaAddrs[0], filepath.Join(work, "batch"), topic, true, false)
				if err != nil {
					return "", err
				}
				r.batchRate = float64(hr.Records) / hr.Restore.Seconds()
				r.batchCPURate = float64(hr.Records) / hr.RestoreCPU.Seconds()
				log.Printf("%d keys: baseline batch restore %s (%.0f keys/s, %.0f per CPU-second)", n, hr.Restore.Round(time.Millisecond), r.batchRate, r.batchCPURate)
				os.RemoveAll(filepath.Join(work, "batch"))
			}
		}
		// Child 1 holds the store (restoring it fresh when the changelog
		// has it), then is SIGKILLed.
		if o.cpuProfile != "" && r.fromKafka {
			os.Setenv("BENCH_STATE_CPUPROFILE", o.cpuProfile+"."+strconv.Itoa(n))
		}
		if o.trace != "" && r.fromKafka {
			os.Setenv("BENCH_STATE_TRACE", o.trace+"."+strconv.Itoa(n))
		}
		hr, err := holdChild(stack.KafkaAddrs[0], sdir, topic, false, !r.fromKafka)
		os.Unsetenv("BENCH_STATE_CPUPROFILE")
		os.Unsetenv("BENCH_STATE_TRACE")
		if err != nil {
			return "", err
		}
		if r.fromKafka {
			r.fresh = hr.Restore
			r.freshRate = float64(hr.Records) / hr.Restore.Seconds()
			r.freshCPURate = float64(hr.Records) / hr.RestoreCPU.Seconds()
			r.settledRate = float64(hr.Records) / hr.Settled.Seconds()
			r.settledCPURate = float64(hr.Records) / hr.SettledCPU.Seconds()
			r.load = loadAvg()
			log.Printf("%d keys: fresh restore %s (%.0f keys/s, %.0f per CPU-second); with the compactions it left %s (%.0f keys/s, %.0f per CPU-second, %d compactions); hold child RSS %d MiB",
				n, r.fresh.Round(time.Millisecond), r.freshRate, r.freshCPURate, hr.Settled.Round(time.Millisecond), r.settledRate, r.settledCPURate, hr.Compactions, hr.RSSKB>>10)
		}
		// A tail written after the kill, then the restart.
		if err := produceEntries(ctx, opts, topic, parts, n, tailRecords, !r.fromKafka); err != nil {
			return "", err
		}
		rs, err := startChild("restart", stack.KafkaAddrs[0], sdir, topic, !r.fromKafka)
		if err != nil {
			return "", err
		}
		var rr childReport
		if err := json.NewDecoder(rs.out).Decode(&rr); err != nil {
			return "", fmt.Errorf("restart child: %w", err)
		}
		rs.cmd.Wait()
		r.warm, r.warmTail, r.rssKB = rr.Ready, rr.Records, rr.RSSKB
		r.getHit, r.getMiss, r.applyPerKey = rr.GetHit, rr.GetMiss, rr.ApplyPerKey
		r.diskBytes = dirSize(sdir)
		if r.load == "" {
			r.load = loadAvg()
		}
		log.Printf("%d keys: warm restart ready in %s (%d tail records), RSS %d MiB, get hit %s miss %s apply %s/key",
			n, r.warm.Round(time.Millisecond), r.warmTail, r.rssKB>>10, r.getHit, r.getMiss, r.applyPerKey)
		os.RemoveAll(sdir)

		// Detokenize through a vault index of n entries.
		if n > o.detokMax {
			res = append(res, r)
			continue
		}
		if err := benchDetokenize(!r.fromKafka, ctx, stack, opts, filepath.Join(work, "vault-"+strconv.Itoa(n)), n, i, &r); err != nil {
			return "", err
		}
		os.RemoveAll(filepath.Join(work, "vault-"+strconv.Itoa(n)))
		res = append(res, r)
	}
	broker := "kfake (in the parent process)"
	if o.realKafka {
		broker = "Apache Kafka " + kafkabroker.Version + " (separate JVM, same machine)"
	}
	return report(res, sizes, broker, o.partitions), nil
}

func createTopic(ctx context.Context, opts []kgo.Opt, topic string, parts int, cleanup string) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	_, err = kadm.NewClient(cl).CreateTopic(ctx, int32(parts), 1, map[string]*string{"cleanup.policy": ptr(cleanup),
		"retention.ms": ptr("-1")}, topic) // entries carry fixed past timestamps: a real broker would delete them by time
	return err
}

func ptr(s string) *string { return &s }

// entryValue is entry i's value: the bytes the tokenizer writes
// (tokenizer.AppendIdempotencyEntry) for a key first seen at offset i of
// input partition 0.
func entryValue(i int) []byte { return appendEntryValue(nil, i) }

func appendEntryValue(b []byte, i int) []byte {
	var c [30]byte
	return tokenizer.AppendIdempotencyEntry(b, string(appendContextID(c[:0], i)), baseTS+int64(i), int64(i), 0)
}

// appendContextID appends entry i's context id: "ctx_" and 26 letters of
// the token alphabet, pseudo-random per key as the tokenizer's (SHA-256
// digests, processors/tokenizer/context.go), so the changelog and the
// tables compress as real entries do (one fixed id flattered Snappy).
// Three splitmix64 outputs give the 130 bits, much cheaper than SHA-256.
func appendContextID(b []byte, i int) []byte {
	b = append(b, "ctx_"...)
	x := uint64(i) * 3
	for w := 0; w < 3; w++ {
		r := splitmix64(x + uint64(w))
		for j := 0; j < 9 && w*9+j < 26; j++ {
			b = append(b, token.Alphabet[r&31])
			r >>= 5
		}
	}
	return b
}

// splitmix64 is a 64-bit mixer (Steele, Lea, Flood: SplitMix64's finalizer).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// appendPadded appends v in base (10 or 16) with leading zeros to width
// digits, as fmt's %0*d / %0*x (no fmt: builds of 100M entries call it
// twice per key).
func appendPadded(b []byte, v uint64, base, width int) []byte {
	n := len(b)
	b = strconv.AppendUint(b, v, base)
	if pad := width - (len(b) - n); pad > 0 {
		b = append(b, make([]byte, pad)...)
		copy(b[n+pad:], b[n:len(b)-pad])
		for i := n; i < n+pad; i++ {
			b[i] = '0'
		}
	}
	return b
}

const baseTS = int64(1_790_000_000_000)

// appendEntryKey: keys in random order (the hash first), as idempotency
// keys arrive, not in changelog order.
func appendEntryKey(b []byte, i int) []byte {
	b = appendPadded(append(b, "idem-"...), uint64(uint32(i)*2654435761), 16, 8)
	return appendPadded(append(b, '-'), uint64(i), 10, 12)
}

// appendSortedKey: keys in changelog order, for stores built directly.
func appendSortedKey(b []byte, i int) []byte {
	b = appendPadded(append(b, "idem-"...), uint64(i), 10, 12)
	return appendPadded(append(b, '-'), uint64(uint32(i)*2654435761), 16, 8)
}

// produceEntries writes n idempotency entries from index from to topic,
// entry i to partition i%parts, in transactions (larger than the
// tokenizer's, to set up quickly; markers still appear).
func produceEntries(ctx context.Context, opts []kgo.Opt, topic string, parts, from, n int, sortedKeys bool) error {
	key := appendEntryKey
	if sortedKeys {
		key = appendSortedKey
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), opts...),
		kgo.TransactionalID(fmt.Sprintf("bench-state-%d", time.Now().UnixNano())),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(1<<20))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	const txn = 25000 // larger than the tokenizer's, to set up quickly; markers still appear
	for start := from; start < from+n; start += txn {
		if err := cl.BeginTransaction(); err != nil {
			return err
		}
		for i := start; i < min(start+txn, from+n); i++ {
			cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(i % parts), Key: key(nil, i), Value: entryValue(i), Timestamp: time.UnixMilli(baseTS + int64(i))}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			return err
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return err
		}
	}
	// Commit markers are written after EndTransaction returns: wait for the
	// last stable offset to reach the high watermark, so the restore that
	// follows sees everything.
	adm := kadm.NewClient(cl)
	for {
		lso, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			return err
		}
		hwm, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return err
		}
		stable := true
		for p := range int32(parts) {
			a, _ := lso.Lookup(topic, p)
			b, _ := hwm.Lookup(topic, p)
			stable = stable && a.Offset == b.Offset
		}
		if stable {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// buildDirect writes n entries straight into a store with Store.Ingest in
// chunks of a million (the bulk restore's path without Kafka), checkpointed
// at the changelog's (empty) end, and records the rate: keys per second and
// per CPU-second of this process.
func buildDirect(dir string, n int, sorted bool, r *result) error {
	key := appendEntryKey
	if sorted {
		key = appendSortedKey
	}
	s, err := state.Open(dir, state.StoreOpts{CacheBytes: cacheBytes})
	if err != nil {
		return err
	}
	t0, c0 := time.Now(), cpuTime()
	ld := newLoader(s, 1<<20)
	for i := 0; i < n; i++ {
		b := ld.batch(0)
		k0 := len(b.buf)
		b.buf = key(b.buf, i)
		v0 := len(b.buf)
		b.buf = appendEntryValue(b.buf, i)
		b.puts = append(b.puts, state.Put{Key: b.buf[k0:v0:v0], Value: b.buf[v0:len(b.buf):len(b.buf)], TS: baseTS + int64(i)})
		if err := ld.added(0); err != nil {
			s.Close()
			return err
		}
		if i%10_000_000 == 0 && i > 0 {
			log.Printf("built %d", i)
		}
	}
	if err := ld.close(); err != nil {
		s.Close()
		return err
	}
	r.build = time.Since(t0)
	cpu := cpuTime() - c0
	r.buildRate, r.buildCPURate = float64(n)/r.build.Seconds(), float64(n)/cpu.Seconds()
	return s.Close()
}

// holdChild starts a child that restores dir from topic (through batches
// when batch is set), reads its report, and SIGKILLs it with the store open.
func holdChild(broker, dir, topic string, batch, sortedKeys bool) (childReport, error) {
	mode := "hold"
	if batch {
		mode = "hold-batch"
	}
	hold, err := startChild(mode, broker, dir, topic, sortedKeys)
	if err != nil {
		return childReport{}, err
	}
	var hr childReport
	err = json.NewDecoder(hold.out).Decode(&hr)
	hold.cmd.Process.Signal(syscall.SIGKILL)
	hold.cmd.Wait()
	if err != nil {
		return hr, fmt.Errorf("%s child: %w", mode, err)
	}
	return hr, nil
}

type childReport struct {
	Restore     time.Duration // restore call only
	RestoreCPU  time.Duration // CPU time of the restoring process during it
	Settled     time.Duration // restore and the compactions it left
	SettledCPU  time.Duration
	Compactions int64         // run by Pebble during the restore and settling
	Ready       time.Duration // process start to restored (open + restore)
	Records     int64
	RSSKB       int64
	GetHit      time.Duration
	GetMiss     time.Duration
	ApplyPerKey time.Duration
}

type childProc struct {
	cmd *exec.Cmd
	out io.Reader
}

func startChild(mode, broker, dir, topic string, sortedKeys bool) (*childProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-child", mode, "-brokers", broker, "-store", dir)
	cmd.Env = append(os.Environ(), "BENCH_STATE_TOPIC="+topic, "BENCH_STATE_SORTED="+strconv.FormatBool(sortedKeys))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	return &childProc{cmd: cmd, out: out}, cmd.Start()
}

// runChild opens the store, restores every partition and reports. "hold" then
// waits to be killed; "restart" also measures lookups and applies.
func runChild(mode, broker, dir string) int {
	start := time.Now()
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := state.Open(dir, state.StoreOpts{CacheBytes: cacheBytes, Logger: quiet})
	if err != nil {
		log.Print(err)
		return 1
	}
	cl := &state.Changelog{Topic: os.Getenv("BENCH_STATE_TOPIC"), ClientOpts: []kgo.Opt{kgo.SeedBrokers(broker)}}
	if mode == "hold-batch" {
		cl.BulkMin = 1 << 62 // the batch path, as before bulk restores
	}
	if mode == "hold" {
		for _, r := range []struct {
			env   string
			start func(io.Writer) error
		}{{"BENCH_STATE_CPUPROFILE", pprof.StartCPUProfile}, {"BENCH_STATE_TRACE", trace.Start}} {
			if p := os.Getenv(r.env); p != "" {
				f, err := os.Create(p)
				if err == nil {
					err = r.start(f)
				}
				if err != nil {
					log.Print(err)
					return 1
				}
			}
		}
	}
	parts, _ := strconv.Atoi(os.Getenv("BENCH_STATE_PARTITIONS"))
	t0, c0 := time.Now(), cpuTime()
	pr, err := restoreAll(ctx, cl, s, max(parts, 1))
	if err != nil {
		log.Print(err)
		return 1
	}
	restoreWall, restoreCPU := time.Since(t0), cpuTime()-c0
	// Compactions the restore left to Pebble run after it returns: wait
	// for them (none running nor started for half a second; at most a
	// minute), so the per-key cost includes them.
	settled, settledCPU := restoreWall, restoreCPU
	for quiet, count, deadline := 0, int64(-1), time.Now().Add(time.Minute); quiet < 5 && time.Now().Before(deadline); {
		m := s.DB().Metrics()
		if m.Compact.NumInProgress > 0 || m.Compact.Count != count {
			quiet, count = 0, m.Compact.Count
			settled, settledCPU = time.Since(t0), cpuTime()-c0
		} else {
			quiet++
		}
		time.Sleep(100 * time.Millisecond)
	}
	pprof.StopCPUProfile()
	trace.Stop()
	cp, _, _ := s.Checkpoint(0)
	log.Printf("child %s: restored from %d to %d (end %d), %d records; checkpoint %+v", mode, pr.From, pr.Next, pr.End, pr.Records, cp)
	rep := childReport{Restore: restoreWall, RestoreCPU: restoreCPU, Settled: settled, SettledCPU: settledCPU,
		Ready: time.Since(start), Records: pr.Records, Compactions: s.DB().Metrics().Compact.Count}
	if mode == "restart" {
		key := appendEntryKey
		if os.Getenv("BENCH_STATE_SORTED") == "true" {
			key = appendSortedKey
		}
		measure(s, key, &rep)
	}
	rep.RSSKB = rssKB()
	json.NewEncoder(os.Stdout).Encode(rep)
	if mode != "restart" {
		select {} // SIGKILLed by the parent, store not closed
	}
	return 0
}

// restoreAll restores partitions 0 to parts-1 concurrently, as a worker
// assigned them all does (state.Table starts one restore per partition),
// and returns partition 0's progress with the records of all.
func restoreAll(ctx context.Context, cl *state.Changelog, s *state.Store, parts int) (state.Progress, error) {
	prs := make([]state.Progress, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		wg.Go(func() { prs[p], errs[p] = cl.Restore(ctx, s, int32(p), nil) })
	}
	wg.Wait()
	for _, pr := range prs[1:] {
		prs[0].Records += pr.Records
	}
	return prs[0], errors.Join(errs...)
}

func measure(s *state.Store, key func([]byte, int) []byte, rep *childReport) {
	cp, _, _ := s.Checkpoint(0)
	n := int(cp.StreamTime - baseTS) // entries are numbered by timestamp
	parts, _ := strconv.Atoi(os.Getenv("BENCH_STATE_PARTITIONS"))
	parts = max(parts, 1) // partition 0 holds the entries i with i%parts == 0
	rng := rand.New(rand.NewPCG(1, 2))
	const lookups = 100000
	t0 := cpuTime()
	for range lookups {
		if k := rng.IntN(n/parts+1) * parts; true {
			if _, ok, err := s.Get(0, key(nil, k)); err != nil || !ok {
				c, _ := s.Count(0)
				log.Fatalf("lookup of stored key %d failed: ok=%v err=%v (checkpoint %+v, %d entries)", k, ok, err, cp, c)
			}
		}
	}
	rep.GetHit = (cpuTime() - t0) / lookups
	t0 = cpuTime()
	for i := range lookups {
		if _, ok, _ := s.Get(0, fmt.Appendf(nil, "new-%d", i)); ok {
			log.Fatal("miss found")
		}
	}
	rep.GetMiss = (cpuTime() - t0) / lookups
	// Transaction-sized applies (250 keys), like a committed tokenizer batch.
	const txns = 200
	t0 = cpuTime()
	for t := range txns {
		puts := make([]state.Put, 250)
		for j := range puts {
			i := n + 1_000_000 + t*250 + j
			puts[j] = state.Put{Key: key(nil, i), Value: entryValue(i), TS: cp.StreamTime}
		}
		cp.Next++
		if err := s.Apply(0, puts, cp); err != nil {
			log.Fatal(err)
		}
	}
	rep.ApplyPerKey = (cpuTime() - t0) / (txns * 250)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func rssKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// benchDetokenize builds a vault index of n real vault entries (Avro, as
// the tokenizer writes them) and times lookups through VaultIndex.Lookup:
// catch-up against the broker (list offsets, nothing new to read) plus one
// Pebble read plus Avro decoding, what `pcistream detokenize
// --vault-index-dir` does before decrypting.
func benchDetokenize(sorted bool, ctx context.Context, stack *devstack.Stack, opts []kgo.Opt, dir string, n, i int, r *result) error {
	tp := config.DefaultTopics()
	tp.Vault = fmt.Sprintf("bench.state.vault.%d", i)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	_, err = kadm.NewClient(cl).CreateTopic(ctx, 3, 1, map[string]*string{"cleanup.policy": ptr("compact")}, tp.Vault)
	cl.Close()
	if err != nil {
		return err
	}
	srcl, err := sr.NewClient(sr.URLs(stack.RegistryURL))
	if err != nil {
		return err
	}
	if _, err := schemas.Register(ctx, srcl, tp); err != nil {
		return err
	}
	serde, err := schemas.NewSerde(ctx, srcl, tp)
	if err != nil {
		return err
	}
	ix, err := tokenizer.OpenVaultIndex(ctx, dir, opts, tp.Vault, cacheBytes)
	if err != nil {
		return err
	}
	defer ix.Close()
	t0 := time.Now()
	// One real encoding, with the token patched in per entry (tokens have
	// a fixed length, so the Avro bytes keep their shape).
	tokenOf := vaultToken
	if sorted {
		tokenOf = sortedVaultToken
	}
	tmplTok := tokenOf(0)
	tmpl, err := serde.Encode(&schemas.VaultEntry{Token: tmplTok, KeyVersion: 1, KEKID: "keyring:v1", WrappedKey: make([]byte, 40),
		Nonce: make([]byte, 12), Ciphertext: make([]byte, 32), Algorithm: "AES-256-GCM", CreatedAt: baseTS})
	if err != nil {
		return err
	}
	at := strings.Index(string(tmpl), tmplTok)
	// Entries are built in reused buffers (no allocation per entry) while
	// the previous batch is ingested; the partition is the vault's
	// (ix.Partition's murmur2, with one partitioner for the loop).
	ld := newLoader(ix.Store(), 1<<19)
	part := kgo.StickyKeyPartitioner(nil).ForTopic(tp.Vault)
	var kr kgo.Record
	var tok []byte
	for k := 0; k < n; k++ {
		tok = appendToken(tok[:0], k, sorted)
		kr.Key = tok
		p := int32(part.Partition(&kr, 3))
		if k < 100 && p != ix.Partition(string(tok)) {
			return fmt.Errorf("bench: vault partition of a token differs from VaultIndex.Partition")
		}
		b := ld.batch(p)
		k0 := len(b.buf)
		b.buf = append(b.buf, tok...)
		v0 := len(b.buf)
		b.buf = binary.BigEndian.AppendUint64(b.buf, uint64(k))
		b.buf = append(b.buf, tmpl...)
		copy(b.buf[v0+8+at:], tok)
		b.puts = append(b.puts, state.Put{Key: b.buf[k0:v0:v0], Value: b.buf[v0:len(b.buf):len(b.buf)], TS: baseTS})
		if err := ld.added(p); err != nil {
			return err
		}
	}
	if err := ld.close(); err != nil {
		return err
	}
	log.Printf("%d vault entries indexed in %s", n, time.Since(t0).Round(time.Millisecond))
	rng := rand.New(rand.NewPCG(3, 4))
	const lookups = 1000
	lat := make([]time.Duration, 0, lookups)
	for range lookups {
		k := rng.IntN(n)
		t := time.Now()
		vr, err := ix.Lookup(ctx, serde, tokenOf(k))
		if err != nil {
			return fmt.Errorf("lookup %d: %w", k, err)
		}
		lat = append(lat, time.Since(t))
		if vr.Offset != int64(k) {
			return fmt.Errorf("lookup %d returned entry %d", k, vr.Offset)
		}
	}
	slices.Sort(lat)
	r.detokN = lookups
	r.detokP50, r.detokP99, r.detokMax = lat[lookups/2], lat[lookups*99/100], lat[lookups-1]
	log.Printf("%d vault entries: lookup p50 %s p99 %s", n, r.detokP50, r.detokP99)
	return nil
}

// appendToken appends token k (sortedVaultToken or vaultToken) to b.
func appendToken(b []byte, k int, sorted bool) []byte {
	if sorted {
		b = append(b, "tok_v1_aaaaaaaaaaaaaaaaaaaaaaaaaa"...)
		for i := len(b) - 1; k > 0; i-- {
			b[i] = byte('a' + k%26)
			k /= 26
		}
		return b
	}
	return append(b, vaultToken(k)...)
}

// loader ingests batches of puts per partition with Store.Ingest in a
// goroutine of its own, so that building the next batch overlaps writing
// the last one; batch buffers are reused.
type loader struct {
	s    *state.Store
	size int
	cur  map[int32]*loadBatch
	work chan *loadBatch
	free chan *loadBatch
	errc chan error
}

type loadBatch struct {
	part int32
	puts []state.Put
	buf  []byte
}

func newLoader(s *state.Store, size int) *loader {
	l := &loader{s: s, size: size, cur: map[int32]*loadBatch{}, work: make(chan *loadBatch, 1),
		free: make(chan *loadBatch, 8), errc: make(chan error, 1)}
	go func() {
		var err error
		for b := range l.work {
			if err == nil {
				err = s.Ingest(b.part, b.puts, state.Checkpoint{})
			}
			b.puts, b.buf = b.puts[:0], b.buf[:0]
			select {
			case l.free <- b:
			default:
			}
		}
		l.errc <- err
	}()
	return l
}

// batch is the batch being built for part.
func (l *loader) batch(part int32) *loadBatch {
	if b := l.cur[part]; b != nil {
		return b
	}
	var b *loadBatch
	select {
	case b = <-l.free:
	default:
		b = &loadBatch{puts: make([]state.Put, 0, l.size), buf: make([]byte, 0, l.size*128)}
	}
	b.part = part
	l.cur[part] = b
	return b
}

// added hands part's batch to the ingesting goroutine once full.
func (l *loader) added(part int32) error {
	if b := l.cur[part]; len(b.puts) >= l.size {
		delete(l.cur, part)
		l.work <- b
	}
	return nil // an Ingest error is returned by close
}

// close ingests the partial batches and waits.
func (l *loader) close() error {
	for p, b := range l.cur {
		delete(l.cur, p)
		l.work <- b
	}
	close(l.work)
	return <-l.errc
}

// sortedVaultToken is vaultToken's shape in k's order (base 26), so a
// vault index built directly from them needs no compaction.
func sortedVaultToken(k int) string {
	b := []byte("tok_v1_aaaaaaaaaaaaaaaaaaaaaaaaaa")
	for i := len(b) - 1; k > 0; i-- {
		b[i] = byte('a' + k%26)
		k /= 26
	}
	return string(b)
}

// vaultToken is a syntactically valid token (tok_v1_ + 26 letters).
func vaultToken(k int) string {
	const alpha = "abcdefghijklmnopqrstuvwxyz"
	b := []byte("tok_v1_")
	x := uint64(k)*0x9E3779B97F4A7C15 + 1
	for range 26 {
		b = append(b, alpha[x%26])
		x = x/26 ^ uint64(k)<<7
		if x == 0 {
			x = uint64(k) + 7
		}
	}
	return string(b)
}

func report(res []result, sizes []int, broker string, parts int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## Idempotency state and vault index (`internal/state`), `bench/state`\n\n", beginMarker)
	fmt.Fprintf(&b, "Machine: %d cores visible, shared with other jobs; %s %s/%s. Date: %s UTC. Load average at the end: %s.\n",
		runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format("2006-01-02 15:04"), loadAvg())
	sz := make([]string, len(sizes))
	for i, s := range sizes {
		sz[i] = strconv.Itoa(s)
	}
	fmt.Fprintf(&b, "Command: `go run ./bench/state -keys %s -partitions %d` (broker: %s). Block cache 64 MiB, memtable 32 MiB.\n\n", strings.Join(sz, ","), parts, broker)
	b.WriteString("| keys | fresh restore (wall) | keys/s (wall) | keys per CPU-second (restoring process) | with the compactions it left: keys/s | per CPU-second | batch restore (baseline) keys/s | per CPU-second | store only (Ingest) keys/s | per CPU-second | load avg |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	na := func(f float64) string {
		if f == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.0f", f)
	}
	for _, r := range res {
		fresh := "n/a (built directly)"
		if r.fromKafka {
			fresh = r.fresh.Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.keys, fresh, na(r.freshRate), na(r.freshCPURate),
			na(r.settledRate), na(r.settledCPURate), na(r.batchRate), na(r.batchCPURate), na(r.buildRate), na(r.buildCPURate), r.load)
	}
	b.WriteString("\n| keys | warm restart after SIGKILL (start to restored, 10k-record tail) | RSS (VmHWM) after 200k lookups | disk | lookup hit (CPU) | lookup miss (CPU) | apply per key (250/txn, CPU) | detokenize p50 | p99 | max |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range res {
		fmt.Fprintf(&b, "| %d | %s | %d MiB | %d MiB | %s | %s | %s | %s | %s | %s |\n",
			r.keys, r.warm.Round(time.Millisecond), r.rssKB>>10, r.diskBytes>>20,
			r.getHit, r.getMiss, r.applyPerKey, r.detokP50.Round(time.Microsecond), r.detokP99.Round(time.Microsecond), r.detokMax.Round(time.Microsecond))
	}
	b.WriteString("\n" + endMarker)
	return b.String()
}

func splice(path, section string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i >= 0 && j > i {
		s = s[:i] + section + s[j+len(endMarker):]
	} else {
		s = strings.TrimRight(s, "\n") + "\n\n" + section + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
