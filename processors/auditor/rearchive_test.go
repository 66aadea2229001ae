package auditor_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/anchor"
	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/processors/auditor"
)

// TestRearchiveIntoPrefix archives a topic live, then re-archives its
// offsets from 3 on under a prefix of their own in a job that is
// interrupted after two batches and run again: the prefix verifies on its
// own (against Kafka's committed offsets, as a partial trail) holding each
// record of the range once, a finished job writes nothing, and the live
// trail still verifies untouched.
func TestRearchiveIntoPrefix(t *testing.T) {
	e := newEnv(t, "rearchive")
	ctx := context.Background()
	produce(t, e.topic, 0, 40)
	_, stop := runAuditor(t, e, e.store, nil)
	waitFor(t, "40 records archived", 30*time.Second, func() bool { return countRecords(t, e) == 40 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := 0
	if _, err := chain.Verify(ctx, e.store, chain.TrustedKey(e.signer.Public()), chain.OnBatch(func(_ *chain.Manifest, recs []chain.Record) error {
		for _, r := range recs {
			if r.Offset >= 3 {
				want++
			}
		}
		return nil
	})); err != nil {
		t.Fatal(err)
	}

	ends, err := kadm.NewClient(kgoClient(t)).ListEndOffsets(ctx, e.topic)
	if err != nil {
		t.Fatal(err)
	}
	bounds := map[int32][2]int64{}
	ends.Each(func(o kadm.ListedOffset) { bounds[o.Partition] = [2]int64{min(3, o.Offset), o.Offset} })
	const prefix = "replays/job-1/"
	rearchive := func(cut int) (auditor.RearchiveResult, error) {
		a, err := auditor.New(chain.Prefixed(e.store, prefix), auditor.Topic(e.topic),
			auditor.ClientOpts(kgo.SeedBrokers(stack.KafkaAddrs...)),
			auditor.BatchLimits(4, 1<<20, time.Minute), auditor.Checkpoints(e.signer, time.Minute),
			auditor.Backoff(20*time.Millisecond, 200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		return a.Rearchive(rctx, bounds, func(r auditor.RearchiveResult) {
			if cut > 0 && r.Batches >= cut {
				cancel()
			}
		})
	}
	if _, err := rearchive(2); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	res, err := rearchive(0)
	if err != nil || len(res.Resumed) == 0 || res.Checkpoint == nil {
		t.Fatalf("resumed run: %v, resumed %v, checkpoint %v", err, res.Resumed, res.Checkpoint)
	}
	if res, err = rearchive(0); err != nil || res.Records != 0 {
		t.Fatalf("finished job again: %v, wrote %d records", err, res.Records)
	}

	offsets := chain.CheckOffsets(anchor.Offsets{Opts: []kgo.Opt{kgo.SeedBrokers(stack.KafkaAddrs...)}})
	seen := map[string]int{}
	rep, err := chain.Verify(ctx, chain.Prefixed(e.store, prefix), chain.TrustedKey(e.signer.Public()), offsets, chain.PartialTrail(),
		chain.OnBatch(func(_ *chain.Manifest, recs []chain.Record) error {
			for _, r := range recs {
				seen[recordID(r)]++
			}
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Checkpoints == 0 || rep.Empty() {
		t.Fatalf("re-archive: %d defects %v, %d checkpoints", len(rep.Defects), rep.Defects, rep.Checkpoints)
	}
	n := 0
	for id, c := range seen {
		n += c
		if c != 1 {
			t.Errorf("%s re-archived %d times", id, c)
		}
	}
	if n != want {
		t.Errorf("re-archived %d records, the range holds %d", n, want)
	}
	// As a whole trail it is missing the records before the range: the
	// option, not luck, makes the check above pass.
	if rep, err := chain.Verify(ctx, chain.Prefixed(e.store, prefix), chain.TrustedKey(e.signer.Public()), offsets); err != nil || rep.OK() {
		t.Fatalf("a partial trail verified as whole: %v", err)
	}
	assertExactlyOnce(t, e, 40)
}

// TestRearchiveRefusesAForgedOrphan: a batch object without manifest in the
// re-archive's prefix whose records are not what Kafka holds stops the job
// before it writes anything.
func TestRearchiveRefusesAForgedOrphan(t *testing.T) {
	e := newEnv(t, "rearchiveforged")
	ctx := context.Background()
	produce(t, e.topic, 0, 30)
	ends, err := kadm.NewClient(kgoClient(t)).ListEndOffsets(ctx, e.topic)
	if err != nil {
		t.Fatal(err)
	}
	bounds := map[int32][2]int64{}
	p := int32(-1)
	ends.Each(func(o kadm.ListedOffset) {
		bounds[o.Partition] = [2]int64{0, o.Offset}
		if o.Offset > 5 { // records at 0..4, then the commit marker
			p = o.Partition
		}
	})
	if p < 0 {
		t.Fatal("no partition holds five records")
	}
	const prefix = "replays/forged/"
	store := chain.Prefixed(e.store, prefix)
	b, err := chain.EncodeBatch(forged(e, p, &chain.Manifest{LastOffset: -1}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutIfAbsent(ctx, b.Key(), b.Object); err != nil {
		t.Fatal(err)
	}
	a, err := auditor.New(store, auditor.Topic(e.topic), auditor.ClientOpts(kgo.SeedBrokers(stack.KafkaAddrs...)),
		auditor.BatchLimits(4, 1<<20, time.Minute), auditor.Checkpoints(e.signer, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Rearchive(ctx, bounds, nil)
	if !errors.Is(err, chain.ErrTampered) {
		t.Fatalf("Rearchive = %v, want a tamper error", err)
	}
	if res.Records != 0 {
		t.Fatalf("wrote %d records before refusing", res.Records)
	}
}
