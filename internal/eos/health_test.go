package eos_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/eos"
)

func newLoop(t *testing.T, in, out, txnID string, extra ...eos.Opt) *eos.Loop {
	t.Helper()
	opts := append([]eos.Opt{
		eos.Name("health"), eos.Group(in + "-group"), eos.Topics(in), eos.TransactionalID(txnID),
		eos.ClientOpts(kgo.SeedBrokers(stack.KafkaAddrs...)), eos.Logger(quiet()),
		eos.ProbeInterval(200 * time.Millisecond), eos.SessionTimeout(6 * time.Second),
	}, extra...)
	l, err := eos.New(upper(out), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func waitStatus(t *testing.T, l *eos.Loop, what string, ok func(string, error) bool) (string, error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := l.Status()
		if ok(s, err) {
			return s, err
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %q, err %v", what, s, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReadinessMeansSomething: a loop is not ready while its input topic is
// missing (and says so), is ready once it joined its group with partitions,
// and a second member that gets no partitions is ready and says why it
// holds none.
func TestReadinessMeansSomething(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	missing := newLoop(t, "rz-missing.in", "rz-missing.out", "rz-missing-0")
	go missing.Run(ctx) //nolint:errcheck
	waitStatus(t, missing, "missing input topic", func(_ string, err error) bool {
		return err != nil && strings.Contains(err.Error(), "rz-missing.in does not exist")
	})

	createTopics(t, 1, "rz.in", "rz.out")
	produceInputs(t, "rz.in", 10)
	a := newLoop(t, "rz.in", "rz.out", "rz-0")
	if err := a.Ready(); err == nil {
		t.Fatal("ready before Run")
	}
	go a.Run(ctx) //nolint:errcheck
	s, _ := waitStatus(t, a, "first member", func(s string, err error) bool { return err == nil })
	if !strings.Contains(s, "1 partitions: rz.in[0]") {
		t.Fatalf("first member status %q, want its partition", s)
	}
	b := newLoop(t, "rz.in", "rz.out", "rz-1")
	go b.Run(ctx) //nolint:errcheck
	s, _ = waitStatus(t, b, "second member", func(s string, err error) bool { return err == nil })
	if !strings.Contains(s, "no partitions: the other members hold them all") {
		t.Fatalf("second member status %q, want it to say it holds no partitions", s)
	}
}

// TestNoStallOnDeletedInput: input the broker deleted (retention,
// DeleteRecords) past the group's committed offsets is not input that
// waits: the stall watchdog stays quiet instead of restarting sessions
// forever, and records produced afterwards are processed.
func TestNoStallOnDeletedInput(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	createTopics(t, 1, "stall-del.in", "stall-del.out")
	produceInputs(t, "stall-del.in", 10)
	adm := kadm.NewClient(devstacktest.Client(t, stack))
	del, err := adm.DeleteRecords(ctx, kadm.Offsets{"stall-del.in": {0: {Topic: "stall-del.in", Partition: 0, At: 10}}})
	if err == nil {
		err = del.Error()
	}
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}
	var logs devstacktest.Buffer
	l := newLoop(t, "stall-del.in", "stall-del.out", "stall-del-0",
		eos.StallAfter(time.Second), eos.Logger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	go l.Run(ctx) //nolint:errcheck
	waitStatus(t, l, "member", func(s string, err error) bool { return err == nil && strings.Contains(s, "stall-del.in[0]") })
	time.Sleep(4 * time.Second) // four stall windows, ~20 probes
	if s := logs.String(); strings.Contains(s, "session stalled") {
		t.Fatalf("watchdog flagged deleted input as waiting: %s", s)
	}
	produceInputs(t, "stall-del.in", 3)
	devstacktest.WaitStable(t, stack, "stall-del.out", 3, 30*time.Second)
}

// TestHeldInputIsNoStall: input behind another producer's open transaction
// cannot be read by any session, so the watchdog does not restart sessions
// over it; it logs that the input is held, with what to do.
func TestHeldInputIsNoStall(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	createTopics(t, 1, "stall-held.in", "stall-held.out")
	produceInputs(t, "stall-held.in", 2)
	prod, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaAddrs...), kgo.TransactionalID("stall-held-open"),
		kgo.DefaultProduceTopic("stall-held.in"), kgo.TransactionTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("held")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produceInputs(t, "stall-held.in", 3) // behind the open transaction
	var logs devstacktest.Buffer
	l := newLoop(t, "stall-held.in", "stall-held.out", "stall-held-0",
		eos.StallAfter(time.Second), eos.Logger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	go l.Run(ctx) //nolint:errcheck
	devstacktest.WaitStable(t, stack, "stall-held.out", 2, 30*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "input held behind an open transaction") {
		if time.Now().After(deadline) {
			t.Fatalf("no 'held' warning in: %s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := logs.String(); strings.Contains(s, "session stalled") {
		t.Fatalf("watchdog restarted sessions over held input: %s", s)
	}
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	devstacktest.WaitStable(t, stack, "stall-held.out", 6, 30*time.Second)
}
