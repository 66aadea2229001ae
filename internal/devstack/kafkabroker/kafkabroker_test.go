package kafkabroker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/devstack/kafkabroker"
)

// TestStartKillRestart starts a real broker, commits a transaction, kills the
// broker with SIGKILL, restarts it on the same directory and reads the
// committed record back read_committed.
func TestStartKillRestart(t *testing.T) {
	if _, err := kafkabroker.Java(); errors.Is(err, kafkabroker.ErrNoJava) {
		t.Skip("java not installed: real-Kafka tests need a JDK 17+; .ci/run installs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := kafkabroker.Start(ctx, kafkabroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	p, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.TransactionalID("kb-test"), kgo.DefaultProduceTopic("kb"),
		kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	p.Close()
	// Kafka writes the commit markers after EndTxn returns; kill only once
	// the record is visible, so the check below is about what a SIGKILL
	// keeps, not about a commit still in flight.
	readCommitted(ctx, t, b.Addr, "before the kill")
	b.Kill()
	if err := b.Restart(ctx); err != nil {
		t.Fatalf("restart after SIGKILL: %v", err)
	}
	readCommitted(ctx, t, b.Addr, "after the broker restart")
}

// readCommitted waits until topic kb shows a record to a read_committed
// consumer.
func readCommitted(ctx context.Context, t *testing.T, addr, when string) {
	t.Helper()
	c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("kb"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for n := 0; n == 0; {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("committed record not readable %s", when)
		}
		n = fs.NumRecords()
	}
}
