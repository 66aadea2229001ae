package auditor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/anchor"
	"github.com/pcistream/pcistream/internal/chain"
)

// The auditor trusts nothing it reads back from the bucket merely because it
// is there: whoever holds the auditor's S3 write permission could have put
// it. Heads must carry the auditor's signature (chain.WriterSigner), the head
// batch must agree with the records Kafka still holds at its offsets, and the
// bucket must still hold the newest checkpoint anchored in Kafka.

// crossCheck compares the head batch of w, and a batch object after it that
// has no manifest, with the committed records Kafka still holds at their
// offsets. Records gone from Kafka (retention) cannot be compared: the head's
// signature is then all there is, and the log says so.
func (a *Auditor) crossCheck(ctx context.Context, w *chain.PartitionWriter) error {
	if h := w.Head(); h != nil {
		recs, lines, err := w.HeadRecords(ctx)
		if err != nil {
			return err
		}
		what := fmt.Sprintf("head manifest %d (offsets %d..%d)", h.Sequence, h.FirstOffset, h.LastOffset)
		compared, logStart, err := a.matchKafka(ctx, w.Partition(), what, recs, lines)
		if err != nil {
			return err
		}
		switch {
		case compared == len(recs):
			a.log.Info("chain head authenticated: signature verified and every record matches Kafka", "partition", w.Partition(), "sequence", h.Sequence, "records", compared)
		case compared == 0:
			a.log.Warn("chain head authenticated by its signature only: its records are no longer in Kafka (retention)", "partition", w.Partition(), "sequence", h.Sequence, "log_start_offset", logStart)
		default:
			a.log.Info("chain head authenticated: signature verified, records still in Kafka match", "partition", w.Partition(), "sequence", h.Sequence, "compared", compared, "of", len(recs))
		}
	}
	return a.checkPending(ctx, w)
}

// checkPending authenticates a batch object without manifest (a writer died
// between its two PUTs, or another writer is between them right now) by its
// records alone: adopting it means the next batch must end exactly where it
// does, so every record in it must be one Kafka holds, byte for byte.
func (a *Auditor) checkPending(ctx context.Context, w *chain.PartitionWriter) error {
	recs, lines, err := w.PendingRecords(ctx)
	if err != nil || recs == nil {
		return err
	}
	first, last := recs[0].Offset, recs[len(recs)-1].Offset
	what := fmt.Sprintf("batch object %d..%d without manifest", first, last)
	compared, _, err := a.matchKafka(ctx, w.Partition(), what, recs, lines)
	if err != nil {
		return err
	}
	if compared != len(recs) {
		// The next batch starts at the log start offset and so lands on
		// another key: the object stays unreferenced, and verify lists it.
		a.log.Warn("batch object without manifest partly gone from Kafka (retention): it cannot be adopted; archiving from the log start offset", "partition", w.Partition(), "first_offset", first, "last_offset", last, "compared", compared, "of", len(recs))
		return nil
	}
	a.log.Info("batch object without manifest authenticated: every record matches Kafka; the next batch adopts it", "partition", w.Partition(), "first_offset", first, "last_offset", last, "records", compared)
	return nil
}

// matchKafka compares archived records (and their exact lines) with the
// committed records Kafka holds over their offsets. It returns how many it
// compared and the partition's log start offset; a disagreement wraps
// ErrTampered, a registry failure ErrTransient.
func (a *Auditor) matchKafka(ctx context.Context, p int32, what string, recs []chain.Record, lines [][]byte) (int, int64, error) {
	first, last := recs[0].Offset, recs[len(recs)-1].Offset
	byOffset := make(map[int64][]byte, len(recs))
	for i, r := range recs {
		byOffset[r.Offset] = lines[i]
	}
	var mismatch error
	compared := 0
	logStart, err := anchor.ReadRange(ctx, a.cfg.clientOpts, a.cfg.topic, p, first, last, func(r *kgo.Record) {
		if mismatch == nil {
			mismatch = a.matchRecord(r, byOffset, what)
			compared++
		}
	})
	if err != nil {
		return 0, 0, fmt.Errorf("partition %d: reading the offsets of the %s back from Kafka: %w", p, what, err)
	}
	if errors.Is(mismatch, ErrTransient) {
		return 0, 0, mismatch
	}
	if mismatch == nil {
		for o := range byOffset {
			if o >= logStart {
				mismatch = fmt.Errorf("it holds offset %d, which is not a committed record in Kafka", o)
				break
			}
		}
	}
	if mismatch != nil {
		return 0, 0, fmt.Errorf("partition %d: %s: %w: %w", p, what, mismatch, chain.ErrTampered)
	}
	return compared, logStart, nil
}

// matchRecord compares Kafka record r with the archived line at its offset,
// which it removes from byOffset.
func (a *Auditor) matchRecord(r *kgo.Record, byOffset map[int64][]byte, what string) error {
	line, ok := byOffset[r.Offset]
	if !ok {
		return fmt.Errorf("Kafka holds a committed record at offset %d that the %s lacks", r.Offset, what)
	}
	delete(byOffset, r.Offset)
	rec, err := a.convert(r)
	if err != nil {
		return err // transient (registry): retried by the caller
	}
	rec.Topic = a.cfg.topic
	got, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, line) {
		return fmt.Errorf("the archived record at offset %d differs from the record Kafka holds (if --mask-policy or --input-format changed since it was written, restore them)", r.Offset)
	}
	return nil
}

// checkAnchor reads the newest checkpoint anchored in Kafka and makes sure
// the bucket still holds it byte for byte.
func (a *Auditor) checkAnchor(ctx context.Context) error {
	if a.cfg.anchorTopic == "" {
		return nil
	}
	var anchors []chain.Anchor
	if err := a.retry(ctx, "read the checkpoint anchors from Kafka topic "+a.cfg.anchorTopic, func() error {
		var err error
		anchors, err = anchor.Read(ctx, a.cfg.clientOpts, a.cfg.anchorTopic, a.cfg.topic)
		return err
	}); err != nil {
		return err
	}
	keys := chain.NewKeyring(a.cfg.trusted...)
	keys.Add(a.cfg.signer.Public())
	newest, b := anchor.Newest(anchors, keys)
	if newest == nil {
		if len(anchors) > 0 {
			return a.alarm(fmt.Errorf("the anchor topic %s holds %d checkpoints of %s, none signed by a trusted key: %w", a.cfg.anchorTopic, len(anchors), a.cfg.topic, chain.ErrTampered))
		}
		return nil
	}
	a.mu.Lock()
	a.anchored = b
	a.mu.Unlock()
	err := a.retry(ctx, "compare the bucket with the anchored checkpoint", func() error { return a.bucketHoldsAnchor(ctx) })
	if errors.Is(err, chain.ErrTampered) {
		return a.alarm(err)
	}
	if err == nil {
		a.log.Info("bucket holds the newest anchored checkpoint", "sequence", newest.Sequence, "topic", a.cfg.anchorTopic)
	}
	return err
}

// bucketHoldsAnchor fails with ErrTampered when the bucket lost or replaced
// the newest checkpoint the auditor knows is anchored in Kafka.
func (a *Auditor) bucketHoldsAnchor(ctx context.Context) error {
	a.mu.Lock()
	b := a.anchored
	a.mu.Unlock()
	if b == nil {
		return nil
	}
	c, err := chain.DecodeCheckpoint(b)
	if err != nil {
		return err
	}
	key := chain.CheckpointKey(c.Sequence)
	got, _, err := a.store.Get(ctx, key, "")
	if errors.Is(err, chain.ErrNotFound) {
		return fmt.Errorf("checkpoint %d is anchored in Kafka but missing from the bucket (%s): the trail was truncated: %w", c.Sequence, key, chain.ErrTampered)
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(got, b) {
		return fmt.Errorf("checkpoint %d in the bucket differs from the one anchored in Kafka: %w", c.Sequence, chain.ErrTampered)
	}
	return nil
}

// publishAnchor produces the last written checkpoint to the anchor topic; on
// failure it stays pending and is retried at the next checkpoint.
func (a *Auditor) publishAnchor(ctx context.Context) {
	a.mu.Lock()
	b, cl := a.unanchored, a.cl
	a.mu.Unlock()
	if a.cfg.anchorTopic == "" || b == nil || cl == nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := anchor.Publish(pctx, cl, a.cfg.anchorTopic, a.cfg.topic, b); err != nil {
		a.m.failures.Inc()
		a.log.Warn("checkpoint written to S3 but not yet anchored in Kafka; retrying at the next checkpoint", "err", err)
		return
	}
	a.mu.Lock()
	if bytes.Equal(a.unanchored, b) {
		a.unanchored = nil
	}
	a.anchored = b
	a.mu.Unlock()
}
