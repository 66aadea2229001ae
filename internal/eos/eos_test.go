package eos_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/eos"
)

var stack *devstack.Stack

// The test binary doubles as the worker process the crash test kills.
const childEnv = "PCISTREAM_EOS_TEST_CHILD"

func TestMain(m *testing.M) {
	os.Exit(devstacktest.Main(m, &stack, devstacktest.StackOpts(devstack.WithoutS3()), devstacktest.Child(childEnv, runChild)))
}

// upper is the transform under test: one output per input, derived only
// from the input, so duplicates and losses are visible.
func upper(out string) eos.ProcessorFunc {
	return func(_ context.Context, r *kgo.Record, o *eos.Out) error {
		o.Emit(&kgo.Record{Topic: out, Key: r.Key, Value: []byte(strings.ToUpper(string(r.Value)))})
		return nil
	}
}

// start runs l until the returned stop is called, which returns Run's
// result.
func start(l *eos.Loop) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func runChild() int {
	brokers := strings.Split(os.Getenv("BROKERS"), ",")
	var p eos.Processor = upper(os.Getenv("OUT"))
	if ms, _ := strconv.Atoi(os.Getenv("SLOW_MS")); ms > 0 {
		inner := p
		p = eos.ProcessorFunc(func(ctx context.Context, r *kgo.Record, o *eos.Out) error {
			time.Sleep(time.Duration(ms) * time.Millisecond)
			return inner.Process(ctx, r, o)
		})
	}
	l, err := eos.New(p,
		eos.Name("eostest"),
		eos.Group(os.Getenv("GROUP")),
		eos.Topics(os.Getenv("IN")),
		eos.TransactionalID(os.Getenv("TXNID")),
		eos.MaxPollRecords(20),
		eos.TxnTimeout(3*time.Second),
		eos.SessionTimeout(6*time.Second),
		eos.ClientOpts(kgo.SeedBrokers(brokers...)),
		eos.Logger(quiet()),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := l.Run(context.Background()); err != nil {
		if errors.Is(err, eos.ErrFenced) {
			return fencedExit
		}
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

const fencedExit = 3

// startChild starts the test binary as a loop worker on <prefix>.in ->
// <prefix>.out with the given transactional id.
func startChild(t *testing.T, prefix, txnID string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1",
		"BROKERS="+strings.Join(stack.KafkaAddrs, ","), "IN="+prefix+".in", "OUT="+prefix+".out",
		"GROUP="+prefix+"-group", "TXNID="+txnID)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func stopChild(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck
	cmd.Wait()                          //nolint:errcheck
}

func createTopics(t *testing.T, partitions int32, names ...string) {
	t.Helper()
	for _, n := range names {
		devstacktest.CreateTopic(t, stack, n, partitions)
	}
}

func produceInputs(t *testing.T, topic string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaAddrs...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(fmt.Sprintf("rec-%06d", i))}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// readCommitted waits until topic holds want committed records, then reads
// it again to its last stable offset a moment later (so late duplicates
// would show), returning how often each value appears.
func readCommitted(t *testing.T, topic string, want int, timeout time.Duration) map[string]int {
	t.Helper()
	devstacktest.WaitStable(t, stack, topic, want, timeout)
	time.Sleep(1500 * time.Millisecond)
	got := map[string]int{}
	for _, r := range devstacktest.ReadStable(t, stack, topic) {
		got[string(r.Value)]++
	}
	return got
}

func checkExactlyOnce(t *testing.T, got map[string]int, n int) {
	t.Helper()
	missing, dups := 0, 0
	for i := 0; i < n; i++ {
		switch c := got[fmt.Sprintf("REC-%06d", i)]; {
		case c == 0:
			missing++
		case c > 1:
			dups += c - 1
		}
	}
	if missing > 0 || dups > 0 || len(got) != n {
		t.Fatalf("exactly-once violated: %d missing, %d duplicates, %d distinct outputs for %d inputs", missing, dups, len(got), n)
	}
}

func TestPassThroughExactlyOnce(t *testing.T) {
	createTopics(t, 3, "pt.in", "pt.out")
	const n = 500
	produceInputs(t, "pt.in", n)
	l, err := eos.New(upper("pt.out"), eos.Name("pt"), eos.Topics("pt.in"), eos.TransactionalID("pt-1"),
		eos.ClientOpts(kgo.SeedBrokers(stack.KafkaAddrs...)), eos.Logger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	stop := start(l)
	got := readCommitted(t, "pt.out", n, 60*time.Second)
	if l.Ready() != nil {
		t.Errorf("loop not ready while processing: %v", l.Ready())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, got, n)
}

// TestProcessErrorFailsClosed: a processor that always errors makes the loop
// stop after its retries, with nothing produced and nothing committed.
func TestProcessErrorFailsClosed(t *testing.T) {
	createTopics(t, 1, "fc.in", "fc.out")
	produceInputs(t, "fc.in", 10)
	calls := 0
	p := eos.ProcessorFunc(func(_ context.Context, r *kgo.Record, o *eos.Out) error {
		calls++
		o.Emit(&kgo.Record{Topic: "fc.out", Value: r.Value})
		return fmt.Errorf("dependency down")
	})
	l, err := eos.New(p, eos.Name("fc"), eos.Topics("fc.in"), eos.TransactionalID("fc-1"),
		eos.MaxRetries(2), eos.Backoff(10*time.Millisecond),
		eos.ClientOpts(kgo.SeedBrokers(stack.KafkaAddrs...)), eos.Logger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := l.Run(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("Run = %v, want an error after retries (ctx %v)", err, ctx.Err())
	}
	if calls < 3 {
		t.Fatalf("processor called %d times, want at least 3 attempts", calls)
	}
	if got := readCommitted(t, "fc.out", 0, 3*time.Second); len(got) != 0 {
		t.Fatalf("aborted outputs visible to read_committed: %d", len(got))
	}
}

// startingUpper is upper with a StartBatch that fails once, then waits
// longer than the transaction timeout once.
type startingUpper struct {
	eos.ProcessorFunc
	calls atomic.Int32
	wait  time.Duration
}

func (s *startingUpper) StartBatch(context.Context, kgo.Fetches) error {
	switch s.calls.Add(1) {
	case 1:
		return errors.New("state not ready")
	case 2:
		time.Sleep(s.wait)
	}
	return nil
}

// TestBatchStarter: a failing StartBatch aborts its batch, whose records
// come again; a StartBatch that waits longer than the transaction timeout
// does not cost the batch its transaction, because nothing of it has
// reached a broker yet.
func TestBatchStarter(t *testing.T) {
	createTopics(t, 1, "bs.in", "bs.out")
	const n = 50
	produceInputs(t, "bs.in", n)
	p := &startingUpper{ProcessorFunc: upper("bs.out"), wait: 2500 * time.Millisecond}
	reg := prometheus.NewRegistry()
	l, err := eos.New(p, eos.Name("bs"), eos.Topics("bs.in"), eos.TransactionalID("bs-1"),
		eos.TxnTimeout(time.Second), eos.Backoff(10*time.Millisecond), eos.Registerer(reg),
		eos.ClientOpts(kgo.SeedBrokers(stack.KafkaAddrs...)), eos.Logger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	stop := start(l)
	got := readCommitted(t, "bs.out", n, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, got, n)
	if c := p.calls.Load(); c < 2 {
		t.Fatalf("StartBatch called %d times, want the failed batch started again", c)
	}
	if got := counterValue(t, reg, "pcistream_txn_aborts_total"); got != 1 {
		t.Fatalf("%v transactions aborted, want 1 (the failed start; the wait must not time one out)", got)
	}
}

// counterValue sums the counters of family name in reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// TestZombieIsFenced: a worker freezes mid-transaction (SIGSTOP: a GC pause
// or a frozen VM) long enough to drop out of the group; its replacement,
// with the same transactional id, takes over and finishes the input. When
// the zombie thaws, its transaction is fenced: it exits with ErrFenced and
// nothing is duplicated.
func TestZombieIsFenced(t *testing.T) {
	if testing.Short() {
		t.Skip("stops real processes; skipped with -short")
	}
	createTopics(t, 1, "zf.in", "zf.out")
	const n = 300
	produceInputs(t, "zf.in", n)
	zombie := startChild(t, "zf", "zf-worker", "SLOW_MS=20")
	time.Sleep(2 * time.Second) // joined and mid-way through a batch
	if err := zombie.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	heir := startChild(t, "zf", "zf-worker")
	defer stopChild(heir)
	got := readCommitted(t, "zf.out", n, 90*time.Second)
	if err := zombie.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- zombie.Wait() }()
	select {
	case err := <-waited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != fencedExit {
			t.Fatalf("zombie exited with %v, want exit code %d (fenced)", err, fencedExit)
		}
	case <-time.After(60 * time.Second):
		stopChild(zombie)
		t.Fatal("zombie kept running after it thawed: not fenced")
	}
	checkExactlyOnce(t, got, n)
	checkExactlyOnce(t, readCommitted(t, "zf.out", n, 10*time.Second), n)
}

// TestSIGKILLExactlyOnce runs the loop in a child process, SIGKILLs it at
// random moments (mid-transaction, mostly) and restarts it with the same
// transactional id; every input must appear exactly once downstream.
func TestSIGKILLExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes; skipped with -short")
	}
	createTopics(t, 3, "kill.in", "kill.out")
	const n = 3000
	produceInputs(t, "kill.in", n)
	start := func() *exec.Cmd { return startChild(t, "kill", "kill-worker-0") }
	rng := rand.New(rand.NewPCG(1, 2))
	kills := 0
	for i := 0; i < 6; i++ {
		cmd := start()
		time.Sleep(time.Duration(300+rng.IntN(900)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait() //nolint:errcheck // killed
		kills++
	}
	cmd := start()
	defer stopChild(cmd)
	got := readCommitted(t, "kill.out", n, 120*time.Second)
	t.Logf("%d SIGKILLs, %d distinct outputs", kills, len(got))
	checkExactlyOnce(t, got, n)
}
