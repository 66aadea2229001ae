package gateway_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/processors/gateway"
)

// A key committed by another writer that this instance has not read yet
// (its local store misses it) is found by the committer's check before
// the transaction and answered as a replay; nothing is written for it.
// Here the instance cannot have read it: a third writer's transaction is
// open on the key's partition below it, so its read_committed tail stops
// there until that transaction is decided, and the commit sits above the
// partition's last stable offset: the check must wait for the high
// watermark, not stop at the last stable offset.
func TestKeyCommittedElsewhereIsFoundByTheCommitter(t *testing.T) {
	a := newEnv(t, nil)
	b := a.sibling(t.Name() + "-b")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := a.topics.GatewayIdempotency
	body, first, x := movedBehindOpenTxn(ctx, t, a)
	// X is decided a little later, while B's request waits for it.
	aborted := make(chan error, 1)
	go func() {
		time.Sleep(500 * time.Millisecond)
		aborted <- x.EndTransaction(ctx, kgo.TryAbort)
	}()
	retry := b.post("/v1/payments", body, "Idempotency-Key", "moved")
	if err := <-aborted; err != nil {
		t.Fatalf("abort X: %v", err)
	}
	if retry.status != http.StatusAccepted || string(retry.body) != string(first.body) || retry.header.Get(gateway.ReplayedHeader) != "true" {
		t.Fatalf("retry on B: %d replayed=%q %s", retry.status, retry.header.Get(gateway.ReplayedHeader), redact(retry.body))
	}
	if n := countKey(a, a.topics.PaymentsRaw, "moved"); n != 0 {
		t.Fatalf("payments.raw holds %d records of the replayed key, want 0", n)
	}
	if n := countKey(a, topic, "moved"); n != 1 {
		t.Fatalf("the idempotency topic holds %d entries of the replayed key, want 1", n)
	}
	// The same key with another body: 409 (B now knows it locally).
	if r := b.post("/v1/payments", paymentJSON("p-moved", testCards[1], `amount_minor=5`), "Idempotency-Key", "moved"); r.status != http.StatusConflict {
		t.Fatalf("changed body on B: %d", r.status)
	}
	a.assertNoLeaks(nil)
	b.assertNoLeaks(nil)
}

// movedBehindOpenTxn prepares a key B cannot have read: A commits a real
// first payment ("first"); a transaction writer X opens a transaction on
// the partition of "moved", and another writer W commits A's entry under
// "moved" above it, so a read_committed reader stops below it until X is
// decided (the caller decides X). It returns the payment body (which
// replays A's answer under "moved": the fingerprint does not cover the
// Idempotency-Key), A's answer and X.
func movedBehindOpenTxn(ctx context.Context, t *testing.T, a *env) (string, response, *kgo.Client) {
	t.Helper()
	topic := a.topics.GatewayIdempotency
	body := paymentJSON("p-moved", testCards[1])
	first := a.post("/v1/payments", body, "Idempotency-Key", "first")
	if first.status != http.StatusAccepted {
		t.Fatalf("first on A: %d %s", first.status, redact(first.body))
	}
	var entry []byte
	for _, r := range a.read(topic) {
		if string(r.Key) == "first" {
			entry = r.Value
		}
	}
	if entry == nil {
		t.Fatal("A's idempotency entry is not on the topic")
	}
	part := partitionOf(t, a.kopts, topic, "moved")
	x := devstacktest.OpenTxn(t, a.kopts, t.Name()+"-x", kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := x.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: part, Key: []byte("x-open"), Value: []byte("{}")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	w := devstacktest.OpenTxn(t, a.kopts, t.Name()+"-w")
	if err := w.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("moved"), Value: entry, Timestamp: time.Now()}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := w.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	return body, first, x
}

// partitionOf is the partition kgo's default partitioner (the gateway's)
// gives key on topic.
func partitionOf(t *testing.T, kopts []kgo.Opt, topic, key string) int32 {
	t.Helper()
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	n := len(md.Topics[topic].Partitions)
	if n == 0 {
		t.Fatalf("%s has no partitions", topic)
	}
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic(topic).Partition(&kgo.Record{Key: []byte(key)}, n))
}
