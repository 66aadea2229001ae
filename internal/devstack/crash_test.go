package devstack_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/devstack"
)

// TestOpenTransactionAfterBrokerCrash: a producer leaves a transaction open
// (records written, no EndTxn) and the broker crashes (SIGKILL for real
// Kafka; for kfake, the cluster is closed without finishing it and
// restarted on the same data directory). After the restart a read_committed
// reader must get past the open transaction once the coordinator aborts it
// (the producer's transaction timeout, 5 s here, plus Kafka's abort sweep,
// every 10 s by default), see the records committed after it, and never
// the open transaction's record. This is the reference behaviour: a reader
// stalled below the last stable offset forever is a broker bug.
func TestOpenTransactionAfterBrokerCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a broker; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	brokerOpt, err := devstack.BrokerFromEnv()
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	s, err := devstack.Start(ctx, devstack.WithoutS3(), devstack.DataDir(dir), brokerOpt)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	const topic = "crash.open"
	cl, _ := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddrs...))
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	p, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddrs...), kgo.TransactionalID("crash-open"),
		kgo.TransactionTimeout(5*time.Second), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p.Close() // the producer dies too: nobody will end this transaction but the coordinator

	addr := crash(ctx, t, &s, dir, brokerOpt)
	t0 := time.Now()
	w, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatalf("produce after the restart: %v", err)
	}
	c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer rcancel()
	var got []string
	for !contains(got, "after") {
		fs := c.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("read_committed reader stalled below the open transaction for 2 minutes after the restart (saw %q)", got)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	t.Logf("read_committed reader passed the open transaction %s after the restart", time.Since(t0).Round(100*time.Millisecond))
	if contains(got, "open") {
		t.Fatalf("read_committed saw the never-committed record: %q", got)
	}
	if strings.Join(got, ",") != "after" {
		t.Fatalf("read_committed saw %q, want only \"after\"", got)
	}
}

// crash crashes the stack's broker and brings it back on the same data,
// returning its address.
func crash(ctx context.Context, t *testing.T, s **devstack.Stack, dir string, brokerOpt devstack.Opt) string {
	t.Helper()
	if b := (*s).Broker; b != nil {
		b.Kill()
		if err := b.Restart(ctx); err != nil {
			t.Fatalf("restart after SIGKILL: %v", err)
		}
		return b.Addr
	}
	(*s).Close()
	n, err := devstack.Start(ctx, devstack.WithoutS3(), devstack.DataDir(dir), brokerOpt)
	if err != nil {
		t.Fatalf("restart kfake on its data dir: %v", err)
	}
	*s = n
	return n.KafkaAddrs[0]
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
