package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
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
	Filter func(r *kgo.Record, streamTime int64) bool
	// Encode, when set, is what the store keeps for a record (default its
	// value); a nil result is a deletion.
	Encode func(r *kgo.Record) []byte
	// Admin, when set, is used to list offsets (saves a connection per
	// restore for callers that restore often, e.g. an index caught up before
	// each lookup).
	Admin *kgo.Client
}

// RestoreBatch bounds the records applied in one Pebble batch.
const RestoreBatch = 16 << 10

// Restore brings part of store up to the changelog's last stable offset,
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
	start, end, err := c.bounds(ctx, part)
	if err != nil {
		return pr, err
	}
	if held && cp.Next > end {
		// The store is ahead of the topic: the topic was recreated (or
		// truncated). Its content is not ours; start over.
		if err := store.Wipe(part); err != nil {
			return pr, err
		}
		held, cp = false, Checkpoint{}
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
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), c.ClientOpts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.Topic: {part: kgo.NewOffset().At(pr.From)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(64<<20),
		kgo.FetchMaxPartitionBytes(32<<20),
	)...)
	if err != nil {
		return pr, fmt.Errorf("state: changelog consumer for %s[%d]: %w", c.Topic, part, err)
	}
	defer cl.Close()
	lastReport := time.Now()
	puts := make([]Put, 0, RestoreBatch)
	for pr.Next < end {
		fs := cl.PollRecords(ctx, RestoreBatch)
		if err := ctx.Err(); err != nil {
			return pr, err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("%s[%d]: %w", t, p, err))
		})
		if ferr != nil {
			return pr, fmt.Errorf("state: restoring from changelog: %w", ferr)
		}
		puts = puts[:0]
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= end {
				return
			}
			pr.Next = r.Offset + 1
			if r.Attrs.IsControl() {
				return
			}
			ts := r.Timestamp.UnixMilli()
			cp.StreamTime = max(cp.StreamTime, ts)
			if c.Filter != nil && !c.Filter(r, cp.StreamTime) {
				return
			}
			v := r.Value
			if c.Encode != nil && v != nil {
				v = c.Encode(r)
			}
			puts = append(puts, Put{Key: r.Key, Value: v, TS: ts})
		})
		cp.Next = pr.Next
		if err := store.Apply(part, puts, cp); err != nil {
			return pr, err
		}
		pr.Records += int64(len(puts))
		if report != nil && time.Since(lastReport) >= time.Second {
			report(pr)
			lastReport = time.Now()
		}
	}
	return pr, nil
}

// bounds returns the log start and last stable offset of part.
func (c *Changelog) bounds(ctx context.Context, part int32) (start, end int64, err error) {
	cl := c.Admin
	if cl == nil {
		if cl, err = kgo.NewClient(c.ClientOpts...); err != nil {
			return 0, 0, fmt.Errorf("state: kafka client: %w", err)
		}
		defer cl.Close()
	}
	adm := kadm.NewClient(cl)
	ends, err := adm.ListCommittedOffsets(ctx, c.Topic)
	if err != nil {
		return 0, 0, fmt.Errorf("state: listing stable offsets of %s: %w", c.Topic, err)
	}
	e, ok := ends.Lookup(c.Topic, part)
	if !ok {
		return 0, 0, fmt.Errorf("state: changelog %s has no partition %d: create it with `pcistream topology apply` (same partition count as the topic it is co-partitioned with)", c.Topic, part)
	}
	if e.Err != nil {
		return 0, 0, fmt.Errorf("state: stable offset of %s[%d] (does the topic exist? run `pcistream topology apply`): %w", c.Topic, part, e.Err)
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
