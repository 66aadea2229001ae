package tokenizer

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/dlq"
	"github.com/pcistream/pcistream/internal/replay"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/schemas"
)

func badCurrency(p *schemas.RawPayment) *schemas.RawPayment {
	p.Currency = "XXXX"
	return p
}

// TestRedriveThroughLiveTokenizer dead-letters two oversize payments and
// one with a bad currency, fixes
// the live tokenizer (a larger limit) and redrives the oversize dead letters
// with a Redriver job, which leaves the bad currency alone (it would fail
// again): the live tokenizer tokenizes the one whose key is new
// (with its original coordinates) and deduplicates the one whose retry was
// tokenized meanwhile. Re-running the job writes nothing; a second job
// forwards the records again and the live tokenizer emits nothing for them.
func TestRedriveThroughLiveTokenizer(t *testing.T) {
	e := newEnv(t)
	kr, _ := token.NewKeyring()
	ctx := context.Background()
	big := func(p *schemas.RawPayment) *schemas.RawPayment {
		p.Metadata = map[string]string{"note": strings.Repeat("x", 2000)}
		return p
	}
	// Recent event times: a real broker deletes records older than a
	// topic's retention.ms (raw 7 days) from under the test.
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	e.produce(
		&kgo.Record{Key: []byte("idem-a"), Value: e.encode(big(payment("pay-a", "idem-a", testCards[0]))), Timestamp: at(0)},
		&kgo.Record{Key: []byte("idem-b"), Value: e.encode(big(payment("pay-b", "idem-b", testCards[1]))), Timestamp: at(1)},
		&kgo.Record{Key: []byte("idem-c"), Value: e.encode(payment("pay-c", "idem-c", testCards[2])), Timestamp: at(2)},
		&kgo.Record{Key: []byte("idem-a"), Value: e.encode(payment("pay-a", "idem-a", testCards[0])), Timestamp: at(3)}, // a's retry
		&kgo.Record{Key: []byte("idem-x"), Value: e.encode(badCurrency(payment("pay-x", "idem-x", testCards[3]))), Timestamp: at(4)},
	)
	live := "g-" + t.Name()
	stop := e.run(e.tokenizer(kr, MaxRecordBytes(1000)), live)
	e.waitCount(e.topics.AuditEvents, 5, 30*time.Second)
	stop()
	stop = e.run(e.tokenizer(kr), live) // the fix: the default limit
	defer stop()

	srcs, err := dlq.Sources(ctx, e.opts, e.serde, e.topics.PaymentsDLQ, dlq.All())
	if err != nil || len(srcs[e.topics.PaymentsRaw]) == 0 {
		t.Fatalf("dead letters: %v %v", srcs, err)
	}
	redrive := func(job string) replay.Result {
		r := replay.Range{Topic: e.topics.PaymentsRaw, FromOffset: -1, ToOffset: -1, Only: srcs[e.topics.PaymentsRaw]}
		rd, err := NewRedriver(e.serde, e.topics.RepartitionTopic(), DefaultMaxRecordBytes)
		if err != nil {
			t.Fatal(err)
		}
		res, err := replay.Run(ctx, rd, r, replay.Options{ClientOpts: e.opts, Group: job})
		if err != nil {
			t.Fatal(err)
		}
		if res.Read > 0 && rd.Still[ReasonInvalidCurrency] != 1 {
			t.Errorf("still failing: %v, want the bad currency left alone", rd.Still)
		}
		return res
	}
	job := devstacktest.Name(t, "redrive")
	if res := redrive(job); res.Read != 3 || res.Written[e.topics.RepartitionTopic()] != 2 {
		t.Fatalf("redrive: %+v", res)
	}
	e.waitCount(e.topics.AuditEvents, 7, 30*time.Second) // + tokenize b, dedup a
	if res := redrive(job); !res.Finished || res.Read != 0 {
		t.Fatalf("same job again: %+v", res)
	}
	redrive(devstacktest.Name(t, "redrive2"))
	// Barrier: retries of a and b land after the second job's records in
	// their repartition partitions; each is one dedup audit event.
	e.produce(
		&kgo.Record{Key: []byte("idem-a"), Value: e.encode(payment("pay-a", "idem-a", testCards[0])), Timestamp: at(4)},
		&kgo.Record{Key: []byte("idem-b"), Value: e.encode(payment("pay-b", "idem-b", testCards[1])), Timestamp: at(5)},
	)
	e.waitCount(e.topics.AuditEvents, 9, 30*time.Second)
	stop()

	tok := e.decodeTokenized(e.read(e.topics.PaymentsTokenized, false))
	byID := map[string]schemas.TokenizedPayment{}
	for _, p := range tok {
		if _, dup := byID[p.PaymentID]; dup {
			t.Errorf("%s tokenized twice", p.PaymentID)
		}
		byID[p.PaymentID] = p
	}
	b, ok := byID["pay-b"]
	if len(tok) != 3 || !ok || b.SourceTopic != e.topics.PaymentsRaw || !slices.Contains(srcs[b.SourceTopic][b.SourcePartition], b.SourceOffset) {
		t.Fatalf("tokenized %d events (want a, b, c once each; b with its dead letter's source coordinates)", len(tok))
	}
	// The second job's copy of a is a duplicate again: the same dedup
	// event (same id, same bytes), which the trail may hold twice.
	evs := map[string][]byte{}
	for _, r := range e.read(e.topics.AuditEvents, false) {
		if prev, ok := evs[string(r.Key)]; ok && !bytes.Equal(prev, r.Value) {
			t.Errorf("audit event %s written twice with different bytes", r.Key)
		}
		evs[string(r.Key)] = r.Value
	}
	if len(evs) != 9 {
		t.Fatalf("%d distinct audit events, want 9 (5 live, tokenize b, dedup a, two barrier dedups)", len(evs))
	}
	e.assertClean(e.allOutputs()...)
}
