package auditor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/internal/kafkax"
)

// RearchiveResult says what Rearchive did.
type RearchiveResult struct {
	Records int64
	Batches int
	// Resumed holds, per partition, the offset after the chain head an
	// earlier run left (the re-run continued from there).
	Resumed map[int32]int64
	// Checkpoint is the signed checkpoint written at the end (nil when
	// the store had nothing to sign).
	Checkpoint *chain.Checkpoint
}

// Rearchive appends the audit events of bounds ([from, to) offsets per
// partition of the audit topic) to the chains of the Auditor's store, which
// for a replay is a prefix of its own (chain.Prefixed): batches, manifests
// and a final signed checkpoint exactly as the live auditor writes them, so
// 'pcistream verify --prefix' checks that trail on its own. It joins no
// consumer group: as for the auditor, each partition's chain head in the
// store is the position, so a re-run after an interruption continues after
// the head (an orphan batch object is adopted once its records are checked
// against Kafka; one that is not what Kafka holds fails with
// chain.ErrTampered), and a finished range
// writes nothing again. progress, when set, is called after each batch.
func (a *Auditor) Rearchive(ctx context.Context, bounds map[int32][2]int64, progress func(RearchiveResult)) (RearchiveResult, error) {
	res := RearchiveResult{Resumed: map[int32]int64{}}
	if bc, ok := a.store.(bucketChecker); ok {
		if err := bc.CheckBucket(ctx); err != nil {
			return res, err
		}
	}
	pub := a.cfg.signer.Public()
	if err := chain.PublishPublicKey(ctx, a.store, chain.EncodePublicKey(pub), chain.KeyID(pub)); err != nil {
		return res, err
	}
	writers := map[int32]*chain.PartitionWriter{}
	ranges := map[int32]kafkax.Range{}
	for p, b := range bounds {
		w, err := chain.OpenPartition(ctx, a.store, a.cfg.topic, p, chain.WriterName(a.cfg.writer),
			chain.WriterSigner(a.cfg.signer), chain.WriterTrust(a.cfg.trusted...))
		if err != nil {
			return res, fmt.Errorf("partition %d: %w", p, err)
		}
		// An object without manifest decides where this run cuts its
		// next batch: it must be what Kafka holds (as for the auditor).
		if err := a.retry(ctx, fmt.Sprintf("authenticate the batch object without manifest of partition %d", p), func() error {
			return a.checkPending(ctx, w)
		}); err != nil {
			return res, err
		}
		writers[p] = w
		from := b[0]
		if next, ok := w.NextOffset(); ok && next > from {
			from = next
			res.Resumed[p] = next
		}
		if from < b[1] {
			ranges[p] = kafkax.Range{Start: from, End: b[1]}
		}
	}
	batches := map[int32]*batch{}
	flush := func(p int32) error {
		b := batches[p]
		if b == nil || len(b.recs) == 0 {
			return nil
		}
		err := a.retry(ctx, fmt.Sprintf("re-archive batch %d..%d of partition %d", b.recs[0].Offset, b.recs[len(b.recs)-1].Offset, p), func() error {
			_, err := writers[p].Append(ctx, slices.Clone(b.recs))
			return err
		})
		if err != nil {
			return err // the writer's errors name the partition
		}
		res.Records += int64(len(b.recs))
		res.Batches++
		batches[p] = &batch{}
		if progress != nil {
			progress(res)
		}
		return nil
	}
	err := kafkax.ReadRanges(ctx, a.cfg.clientOpts, a.cfg.topic, ranges, func(r *kgo.Record) error {
		return a.rearchiveAdd(ctx, writers[r.Partition], batches, r, flush)
	}, kafkax.IdleTimeout(10*time.Second))
	var stalled *kafkax.StalledError
	if err != nil && !errors.As(err, &stalled) {
		return res, err
	}
	parts := make([]int32, 0, len(batches))
	for p := range batches {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		if err := flush(p); err != nil {
			return res, err
		}
	}
	c, err := chain.WriteCheckpoint(ctx, a.store, a.cfg.signer, time.Now(), a.cfg.trusted...)
	if err != nil {
		return res, fmt.Errorf("sign the re-archive's checkpoint: %w", err)
	}
	res.Checkpoint = c
	return res, nil
}

// rearchiveAdd batches one record for Rearchive, writing the batch when it
// is full, or where an orphan object of an interrupted run ends.
func (a *Auditor) rearchiveAdd(ctx context.Context, w *chain.PartitionWriter, batches map[int32]*batch, r *kgo.Record, flush func(int32) error) error {
	if h := w.Head(); h != nil && r.Offset <= h.LastOffset {
		return nil
	}
	b := batches[r.Partition]
	if b == nil {
		b = &batch{}
		batches[r.Partition] = b
	}
	var rec chain.Record
	if err := a.retry(ctx, "decode record (schema registry)", func() error {
		var err error
		rec, err = a.convert(r)
		return err
	}); err != nil {
		return err
	}
	b.recs = append(b.recs, rec)
	b.bytes += len(rec.Event) + len(rec.RawMasked) + len(rec.Key) + 128
	pendEnd, pending := w.PendingEnd()
	switch {
	case pending && r.Offset >= pendEnd:
		return flush(r.Partition)
	case !pending && (len(b.recs) >= a.cfg.maxRecords || b.bytes >= a.cfg.maxBytes):
		return flush(r.Partition)
	}
	return nil
}
