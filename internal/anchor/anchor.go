// Package anchor keeps the audit trail's trust anchors in Kafka, a trust
// domain separate from the S3 bucket: every signed checkpoint is also
// produced to a compacted topic (keyed by the audit topic it covers), so an
// insider who can write the bucket but not that topic cannot remove the
// newest checkpoints unnoticed. It also reads back what Kafka still holds of
// the audit topic itself, which the auditor compares with the head batch it
// resumes from and verify compares with the trail's offsets.
package anchor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/chain"
)

// idle is how long a read waits for more records before deciding the
// partition has nothing more up to its stable offset (transaction markers
// at the end of a range are never returned as records).
const idle = 5 * time.Second

// Publish produces a checkpoint's stored bytes to topic, keyed by the audit
// topic the checkpoint covers (one compacted entry per trail).
func Publish(ctx context.Context, cl *kgo.Client, topic, trail string, checkpoint []byte) error {
	r := &kgo.Record{Topic: topic, Key: []byte(trail), Value: checkpoint}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("anchoring checkpoint in Kafka topic %s: %w", topic, err)
	}
	return nil
}

// Read returns every checkpoint of trail still held by the anchor topic
// (compaction keeps at least the newest), for chain.Anchors.
func Read(ctx context.Context, opts []kgo.Opt, topic, trail string) ([]chain.Anchor, error) {
	var out []chain.Anchor
	err := scan(ctx, opts, topic, -1, 0, -1, func(r *kgo.Record) {
		if string(r.Key) == trail {
			out = append(out, chain.Anchor{
				Source: fmt.Sprintf("kafka %s/%d@%d", topic, r.Partition, r.Offset),
				Bytes:  r.Value,
			})
		}
	})
	return out, err
}

// Newest returns the anchored checkpoint of trail with the highest sequence
// whose signature verifies under keys, and its bytes; nil when none.
func Newest(anchors []chain.Anchor, keys chain.Keyring) (*chain.Checkpoint, []byte) {
	var best *chain.Checkpoint
	var bestBytes []byte
	for _, a := range anchors {
		c, err := chain.DecodeCheckpoint(a.Bytes)
		if err != nil || keys.VerifyCheckpoint(c) != nil {
			continue
		}
		if best == nil || c.Sequence > best.Sequence {
			best, bestBytes = c, a.Bytes
		}
	}
	return best, bestBytes
}

// ReadRange calls fn with every committed record (read_committed) of one
// partition with an offset in [from, to], in order, and returns the
// partition's log start offset: records below it are gone (retention).
func ReadRange(ctx context.Context, opts []kgo.Opt, topic string, partition int32, from, to int64, fn func(*kgo.Record)) (int64, error) {
	var logStart int64
	err := scan(ctx, opts, topic, partition, from, to, func(r *kgo.Record) { fn(r) }, func(start int64) { logStart = start })
	return logStart, err
}

// Offsets is a chain.OffsetSource over a Kafka cluster.
type Offsets struct{ Opts []kgo.Opt }

// CommittedOffsets implements chain.OffsetSource.
func (o Offsets) CommittedOffsets(ctx context.Context, topic string, partition int32, from, to int64, fn func(int64)) (int64, error) {
	return ReadRange(ctx, o.Opts, topic, partition, from, to, func(r *kgo.Record) { fn(r.Offset) })
}

// scan reads topic (one partition, or all with partition -1) read_committed
// from offset from (clamped to the log start) up to to (-1: the last stable
// offset at the start of the scan). onStart, if given, gets the log start
// offset of the partition.
func scan(ctx context.Context, opts []kgo.Opt, topic string, partition int32, from, to int64, fn func(*kgo.Record), onStart ...func(int64)) error {
	assign, stop, err := ranges(ctx, opts, topic, partition, from, to, onStart...)
	if err != nil || len(assign) == 0 {
		return err
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(time.Second))...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	for len(stop) > 0 {
		pctx, cancel := context.WithTimeout(ctx, idle)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && ferr == nil {
				ferr = err
			}
		})
		if ferr != nil {
			return fmt.Errorf("reading %s: %w", topic, ferr)
		}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			last, ok := stop[r.Partition]
			if !ok {
				return
			}
			if r.Offset > last {
				delete(stop, r.Partition)
				return
			}
			n++
			fn(r)
			if r.Offset == last {
				delete(stop, r.Partition)
			}
		})
		if n == 0 {
			// Nothing more within the idle wait: what is left up to the
			// stable offset is markers or aborted records.
			return nil
		}
	}
	return nil
}

// ranges lists where to start reading each partition and the last offset
// wanted (bounded by the last stable offset).
func ranges(ctx context.Context, opts []kgo.Opt, topic string, partition int32, from, to int64, onStart ...func(int64)) (map[int32]kgo.Offset, map[int32]int64, error) {
	adm, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	defer adm.Close()
	ka := kadm.NewClient(adm)
	starts, err := ka.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing start offsets of %s: %w", topic, err)
	}
	ends, err := ka.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing stable offsets of %s: %w", topic, err)
	}
	if len(starts[topic]) == 0 {
		return nil, nil, fmt.Errorf("topic %s does not exist: create it with 'pcistream topology apply'", topic)
	}
	if _, ok := starts[topic][partition]; partition >= 0 && !ok {
		return nil, nil, fmt.Errorf("topic %s has no partition %d", topic, partition)
	}
	assign := map[int32]kgo.Offset{}
	stop := map[int32]int64{}
	for p, so := range starts[topic] {
		if partition >= 0 && p != partition {
			continue
		}
		if len(onStart) > 0 {
			onStart[0](so.Offset)
		}
		eo, _ := ends.Lookup(topic, p)
		last := eo.Offset - 1
		if to >= 0 {
			last = min(last, to)
		}
		if first := max(from, so.Offset); first <= last {
			assign[p] = kgo.NewOffset().At(first)
			stop[p] = last
		}
	}
	return assign, stop, nil
}
