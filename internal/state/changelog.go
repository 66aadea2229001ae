package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/kafkax"
)

// Progress is a restore's position, reported while it runs.
type Progress struct {
	Partition int32
	From      int64 // first changelog offset read
	Next      int64 // next offset to read
	End       int64 // last stable offset when the restore started
	Records   int64 // records applied so far
	Started   time.Time
}

// Remaining is how many offsets are left to read.
func (p Progress) Remaining() int64 { return max(p.End-p.Next, 0) }

// Changelog restores partitions of a store from their changelog topic: the
// compacted topic that the processor writes every state change to, in the
// same transaction as its output.
type Changelog struct {
	Topic string
	// ClientOpts connect to the cluster (kafkax.Opts).
	ClientOpts []kgo.Opt
	// Filter, when set, drops records during a restore (returns false):
	// e.g. entries already outside the window, so they are never loaded.
	// Bulk restores reuse the record: it is only valid during the call.
	Filter func(r *kgo.Record, streamTime int64) bool
	// Encode, when set, appends what the store keeps for a record (default
	// its value) to dst and returns the result; it is not called for
	// deletions (nil values). Bulk restores reuse the record: it is only
	// valid during the call.
	Encode func(dst []byte, r *kgo.Record) []byte
	// Admin, when set, is used to list offsets (saves a connection per
	// restore for callers that restore often, e.g. an index caught up before
	// each lookup).
	Admin *kgo.Client
	// BulkMin is the number of offsets left from which a restore loads in
	// bulk (default BulkRestoreMin).
	BulkMin int64
	// HighWatermark has Restore read up to the partition's high watermark
	// instead of its last stable offset, so it returns only once every
	// transaction open at the listing is decided. For a reader that must
	// see everything committed before the call: Kafka answers a commit
	// before it writes the transaction's markers, and another writer's
	// open transaction holds the last stable offset below later commits.
	HighWatermark bool

	chunkRecords int           // tests: bulk chunk size (default BulkChunkRecords)
	partialAfter time.Duration // tests: see defaultPartialAfter
	tableKeys    int           // tests: keys per data table of a bulk restore (default bulkTableKeys)
}

// RestoreBatch bounds the records applied in one Pebble batch.
const RestoreBatch = 16 << 10

// Restore brings part of store up to the changelog's last stable offset
// (its high watermark with HighWatermark),
// reading read_committed from the store's checkpoint (or the log start for a
// partition never held), and reports progress every second through report
// (may be nil). Only committed records reach the store and every batch
// carries its checkpoint, so a restore cancelled or killed midway resumes
// where it stopped. There is no timeout: cancel ctx to stop it (revoked
// partitions do).
func (c *Changelog) Restore(ctx context.Context, store *Store, part int32, report func(Progress)) (Progress, error) {
	pr := Progress{Partition: part, Started: time.Now()}
	cp, held, err := store.Checkpoint(part)
	if err != nil {
		return pr, err
	}
	start, end, err := c.endpoints(ctx, store, part, cp, held)
	if err != nil {
		return pr, err
	}
	if held && cp.Next > end { // wiped (aheadOf)
		if cp, held, err = store.Checkpoint(part); err != nil {
			return pr, err
		}
	}
	pr.From = max(cp.Next, start)
	pr.Next, pr.End = pr.From, end
	if pr.From >= end {
		if !held || cp.Next != end {
			// Record the position, so the next restore starts here.
			cp.Next = max(cp.Next, end)
			if err := store.Apply(part, nil, cp); err != nil {
				return pr, err
			}
		}
		return pr, nil
	}
	// kafkax.ReadCommitted, not a kgo consumer: it tracks its own position,
	// so a changelog ending in a transaction aborted without a marker (a
	// broker crash) does not stall the restore below the last stable offset.
	cl, err := kgo.NewClient(c.ClientOpts...)
	if err != nil {
		return pr, fmt.Errorf("state: changelog reader for %s[%d]: %w", c.Topic, part, err)
	}
	defer cl.Close()
	bulkMin := c.BulkMin
	if bulkMin <= 0 {
		bulkMin = BulkRestoreMin
	}
	if end-pr.From >= bulkMin {
		if !held {
			// Data without a checkpoint (a crash before the first one):
			// not known to be a prefix of this changelog.
			if err := store.wipeIfAny(part); err != nil {
				return pr, err
			}
		}
		// Partitions restore in parallel up to the store's bulk slots;
		// the others wait here (still cancellable), so a worker assigned
		// many partitions does not hold two chunks for each.
		select {
		case store.bulk <- struct{}{}:
		case <-ctx.Done():
			return pr, fmt.Errorf("state: restoring from changelog %s[%d]: %w", c.Topic, part, ctx.Err())
		}
		err := c.restoreBulk(ctx, cl, store, part, cp, end, &pr, report)
		<-store.bulk
		if err != nil {
			return pr, fmt.Errorf("state: restoring from changelog %s[%d]: %w", c.Topic, part, err)
		}
		return pr, nil
	}
	lastReport := time.Now()
	puts := make([]Put, 0, RestoreBatch)
	// flush applies the pending puts with next as the checkpoint: every
	// record below next has been seen, so the store stays a committed
	// prefix of the changelog.
	flush := func(next int64) error {
		if next <= cp.Next && len(puts) == 0 {
			return nil
		}
		cp.Next = max(cp.Next, next)
		if err := store.Apply(part, puts, cp); err != nil {
			return err
		}
		pr.Records += int64(len(puts))
		pr.Next = cp.Next
		puts = puts[:0]
		return nil
	}
	var applyErr error // from a flush in progress, which cannot return one
	err = kafkax.ReadCommitted(ctx, cl, c.Topic, map[int32]int64{part: pr.From}, map[int32]int64{part: end},
		func(r *kgo.Record) error {
			if applyErr != nil {
				return applyErr
			}
			ts := r.Timestamp.UnixMilli()
			cp.StreamTime = max(cp.StreamTime, ts)
			if c.Filter != nil && !c.Filter(r, cp.StreamTime) {
				return nil
			}
			v := r.Value
			if c.Encode != nil && v != nil {
				v = c.Encode(nil, r)
			}
			puts = append(puts, Put{Key: r.Key, Value: v, TS: ts})
			if len(puts) >= RestoreBatch {
				return flush(r.Offset + 1)
			}
			return nil
		},
		func(_ int32, next, _ int64) {
			if applyErr == nil {
				applyErr = flush(next)
			}
			if report != nil && time.Since(lastReport) >= time.Second {
				report(pr)
				lastReport = time.Now()
			}
		})
	if err = errors.Join(err, applyErr); err != nil {
		return pr, fmt.Errorf("state: restoring from changelog %s[%d]: %w", c.Topic, part, err)
	}
	if err := flush(end); err != nil {
		return pr, err
	}
	return pr, nil
}

// endpoints returns the log start and the offset a restore of part reads
// up to, for a store whose checkpoint is cp (held: it has one). One admin
// client serves the listings, closed before the read.
func (c *Changelog) endpoints(ctx context.Context, store *Store, part int32, cp Checkpoint, held bool) (start, end int64, err error) {
	adm, done, err := c.admin()
	if err != nil {
		return 0, 0, err
	}
	defer done()
	if start, end, err = c.bounds(ctx, adm, part); err != nil || !held || cp.Next <= end {
		return start, end, err
	}
	end, err = c.aheadOf(ctx, adm, store, part, cp.Next, end)
	return start, end, err
}

// aheadOf handles a store whose checkpoint next is above the changelog's
// last stable offset lso, and returns the offset to restore up to. Below
// the high watermark that is the store's own transaction whose marker has
// not reached part yet: nothing to read. Above it, the topic was recreated
// (or truncated): the store's content is not ours; it is wiped.
func (c *Changelog) aheadOf(ctx context.Context, adm *kadm.Client, store *Store, part int32, next, lso int64) (int64, error) {
	ends, err := adm.ListEndOffsets(ctx, c.Topic)
	if err != nil {
		return 0, fmt.Errorf("state: listing end offsets of %s: %w", c.Topic, err)
	}
	if e, ok := ends.Lookup(c.Topic, part); ok && e.Err == nil && next <= e.Offset {
		return next, nil
	}
	return lso, store.Wipe(part)
}

// bounds returns the log start and last stable offset of part.
func (c *Changelog) bounds(ctx context.Context, adm *kadm.Client, part int32) (start, end int64, err error) {
	list := adm.ListCommittedOffsets
	if c.HighWatermark {
		list = adm.ListEndOffsets
	}
	ends, err := list(ctx, c.Topic)
	if err != nil {
		return 0, 0, fmt.Errorf("state: listing end offsets of %s: %w", c.Topic, err)
	}
	e, ok := ends.Lookup(c.Topic, part)
	if !ok {
		return 0, 0, fmt.Errorf("state: changelog %s has no partition %d: create it with `pcistream topology apply` (same partition count as the topic it is co-partitioned with)", c.Topic, part)
	}
	if e.Err != nil {
		return 0, 0, fmt.Errorf("state: end offset of %s[%d] (does the topic exist? run `pcistream topology apply`): %w", c.Topic, part, e.Err)
	}
	starts, err := adm.ListStartOffsets(ctx, c.Topic)
	if err != nil {
		return 0, 0, fmt.Errorf("state: listing start offsets of %s: %w", c.Topic, err)
	}
	if s, ok := starts.Lookup(c.Topic, part); ok && s.Err == nil {
		start = s.Offset
	}
	return start, e.Offset, nil
}
