package tokenizer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/schemas"
)

// childSpec is what the parent passes to a tokenizer child process.
type childSpec struct {
	Brokers  []string
	Registry string
	Topics   config.Topics
	Keyring  string
	Group    string
	Delay    time.Duration // per record, to keep transactions open longer
	StateDir string        // kept across kills: restarts replay only the changelog tail
}

// slowProcessor delays each record so a SIGKILL lands mid-transaction.
type slowProcessor struct {
	*Processor
	delay time.Duration
}

func (s slowProcessor) Process(ctx context.Context, rec *kgo.Record, out *eos.Out) error {
	time.Sleep(s.delay)
	return s.Processor.Process(ctx, rec, out)
}

// childMain runs the tokenizer in a child process until it is killed.
func childMain() int {
	var spec childSpec
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "child spec:", err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	kr, err := token.Open(ctx, spec.Keyring)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	srcl, _ := sr.NewClient(sr.URLs(spec.Registry))
	serde, err := schemas.NewSerde(ctx, srcl, spec.Topics)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	opts := []kgo.Opt{kgo.SeedBrokers(spec.Brokers...)}
	tk, err := New(kr, token.NewVault(kr), serde, Topics(spec.Topics), Logger(quietLogger()), StateClientOpts(opts...), StateDir(spec.StateDir))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	co := append(append([]kgo.Opt(nil), opts...), kgo.RecordPartitioner(Partitioner(spec.Topics.Idempotency)))
	l, err := eos.New(slowProcessor{NewProcessor(tk), spec.Delay}, eos.Name(Name), eos.Topics(spec.Topics.PaymentsRaw, spec.Topics.RepartitionTopic()),
		eos.ClientOpts(co...), eos.Group(spec.Group), eos.TransactionalID(spec.Group+"-txn"),
		eos.SessionTimeout(6*time.Second), eos.MaxPollRecords(50), eos.Logger(quietLogger()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := l.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func (e *env) startChild(spec childSpec) *exec.Cmd {
	e.t.Helper()
	b, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	return cmd
}

// TestExactlyOnceUnderSIGKILL kills a tokenizer child process while it is in
// the middle of transactions, restarts it, and checks that every input
// yields exactly one tokenized event (and one audit event), that the killed
// process's open transaction was aborted rather than half-visible, and that
// no PAN or CVV reached any output.
func TestExactlyOnceUnderSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	e := newEnv(t)
	kr, _ := token.NewKeyring()
	raw, _ := kr.Marshal()
	const n = 600
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		p := payment(fmt.Sprintf("pay-%d", i), fmt.Sprintf("idem-%d", i), testCards[i%len(testCards)])
		recs = append(recs, &kgo.Record{Key: []byte(p.IdempotencyKey), Value: e.encode(p), Partition: int32(i % 3)})
	}
	// Webhook retries of the first 100 payments, on another partition than
	// the original (as a producer with another partitioner would), spread
	// over the run so some land across kills: none may yield a second event.
	for i := 0; i < 100; i++ {
		p := payment(fmt.Sprintf("pay-%d", i), fmt.Sprintf("idem-%d", i), testCards[i%len(testCards)])
		recs = append(recs, &kgo.Record{Key: []byte(p.IdempotencyKey), Value: e.encode(p), Partition: int32((i + 1) % 3)})
	}
	e.produce(recs...)
	spec := childSpec{Brokers: stack.KafkaAddrs, Registry: stack.RegistryURL, Topics: e.topics, Keyring: string(raw),
		Group: "g-crash-" + fmt.Sprint(time.Now().UnixNano()), Delay: 2 * time.Millisecond, StateDir: t.TempDir()}

	kills := 0
	for round := 0; round < 2; round++ {
		child := e.startChild(spec)
		// Wait until it has committed some work and is in a later
		// transaction, then kill it without warning.
		deadline := time.Now().Add(60 * time.Second)
		for {
			c := len(e.readNow(e.topics.PaymentsTokenized, false))
			u := len(e.readNow(e.topics.PaymentsTokenized, true))
			if (c >= (round+1)*100 && u > c) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
		kills++
	}
	child := e.startChild(spec)
	defer func() {
		child.Process.Signal(syscall.SIGTERM)
		child.Wait()
	}()

	committed := e.waitCount(e.topics.PaymentsTokenized, n, 120*time.Second)
	// Give a duplicate, if any, time to show up.
	time.Sleep(2 * time.Second)
	committed = e.read(e.topics.PaymentsTokenized, false)
	seen := map[string]int{}
	for _, tp := range e.decodeTokenized(committed) {
		seen[tp.PaymentID]++
	}
	dups := 0
	for _, c := range seen {
		if c > 1 {
			dups++
		}
	}
	if len(committed) != n || len(seen) != n || dups != 0 {
		t.Fatalf("after %d SIGKILLs: %d committed tokenized events, %d distinct payments, %d duplicated; want %d each, 0 duplicated",
			kills, len(committed), len(seen), dups, n)
	}
	uncommitted := len(e.read(e.topics.PaymentsTokenized, true))
	t.Logf("after %d SIGKILLs: %d committed, %d in the log incl. aborted transactions", kills, len(committed), uncommitted)
	if uncommitted <= n {
		t.Fatalf("no aborted records in the log (%d): the kills did not land mid-transaction", uncommitted)
	}
	audits := 0
	for _, r := range e.read(e.topics.AuditEvents, false) {
		// Dedup audit events say "already tokenized": not tokenizations.
		if strings.Contains(string(r.Value), "tokenize") && !strings.Contains(string(r.Value), "already tokenized") {
			audits++
		}
	}
	if audits != n {
		t.Fatalf("%d committed tokenize audit events, want %d", audits, n)
	}
	e.assertClean(e.allOutputs()...)
}
