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

// crossCheck compares the head batch of w with the committed records Kafka
// still holds at its offsets. Records gone from Kafka (retention) cannot be
// compared: the signature is then all there is, and the log says so.
func (a *Auditor) crossCheck(ctx context.Context, w *chain.PartitionWriter) error {
	h := w.Head()
	if h == nil {
		return nil
	}
	recs, lines, err := w.HeadRecords(ctx)
	if err != nil {
		return err
	}
	byOffset := make(map[int64][]byte, len(recs))
	for i, r := range recs {
		byOffset[r.Offset] = lines[i]
	}
	var mismatch error
	compared := 0
	logStart, err := anchor.ReadRange(ctx, a.cfg.clientOpts, a.cfg.topic, w.Partition(), h.FirstOffset, h.LastOffset, func(r *kgo.Record) {
		if mismatch != nil {
			return
		}
		line, ok := byOffset[r.Offset]
		if !ok {
			mismatch = fmt.Errorf("Kafka holds a committed record at offset %d that the head batch %d..%d lacks", r.Offset, h.FirstOffset, h.LastOffset)
			return
		}
		delete(byOffset, r.Offset)
		rec, err := a.convert(r)
		if err != nil {
			mismatch = err // transient (registry): retried by the caller
			return
		}
		rec.Topic = a.cfg.topic
		got, err := json.Marshal(rec)
		if err != nil {
			mismatch = err
			return
		}
		if !bytes.Equal(got, line) {
			mismatch = fmt.Errorf("the archived record at offset %d differs from the record Kafka holds (if --mask-policy or --input-format changed since it was written, restore them)", r.Offset)
			return
		}
		compared++
	})
	if err != nil {
		return fmt.Errorf("partition %d: reading the head batch's offsets back from Kafka: %w", w.Partition(), err)
	}
	if errors.Is(mismatch, ErrTransient) {
		return mismatch
	}
	if mismatch == nil {
		for o := range byOffset {
			if o >= logStart {
				mismatch = fmt.Errorf("the head batch holds offset %d, which is not a committed record in Kafka", o)
				break
			}
		}
	}
	if mismatch != nil {
		return fmt.Errorf("partition %d: head manifest %d (offsets %d..%d): %w: %w", w.Partition(), h.Sequence, h.FirstOffset, h.LastOffset, mismatch, chain.ErrTampered)
	}
	switch {
	case compared == len(recs):
		a.log.Info("chain head authenticated: signature verified and every record matches Kafka", "partition", w.Partition(), "sequence", h.Sequence, "records", compared)
	case compared == 0:
		a.log.Warn("chain head authenticated by its signature only: its records are no longer in Kafka (retention)", "partition", w.Partition(), "sequence", h.Sequence, "log_start_offset", logStart)
	default:
		a.log.Info("chain head authenticated: signature verified, records still in Kafka match", "partition", w.Partition(), "sequence", h.Sequence, "compared", compared, "of", len(recs))
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
