package kafkax

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Range is the offsets [Start, End) of one partition.
type Range struct {
	Start, End int64
}

// StableRanges lists, for every partition of topic, the offsets from the log
// start to the last stable offset: what a read_committed consumer can read
// now, every transaction before it decided. With uncommitted it lists up to
// the high watermark instead.
func StableRanges(ctx context.Context, adm *kadm.Client, topic string, uncommitted bool) (map[int32]Range, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing start offsets of %s (does the topic exist? run `pcistream topology apply`): %w", topic, err)
	}
	list := adm.ListCommittedOffsets
	if uncommitted {
		list = adm.ListEndOffsets
	}
	ends, err := list(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	out := map[int32]Range{}
	ends.Each(func(o kadm.ListedOffset) {
		r := Range{End: o.Offset}
		if s, ok := starts.Lookup(topic, o.Partition); ok {
			r.Start = s.Offset
		}
		out[o.Partition] = r
	})
	return out, nil
}

// StalledError is returned by ReadRanges with an idle timeout when the
// partitions it names returned nothing for that long before reaching their
// end (a compacted or aborted tail can leave no record at End-1).
type StalledError struct {
	Topic      string
	Partitions []int32
	Idle       time.Duration
}

func (e *StalledError) Error() string {
	return fmt.Sprintf("%s: partitions %v returned nothing for %s before reaching the end offset captured at start", e.Topic, e.Partitions, e.Idle)
}

// ReadOpt tunes ReadRanges and ReadStable.
type ReadOpt func(*readCfg)

type readCfg struct {
	uncommitted bool
	hwm         bool
	idle        time.Duration
	progress    func(partition int32, next, end int64)
}

// Progress has read_committed reads report each partition's next offset
// after every fetch (restore progress for readiness).
func Progress(fn func(partition int32, next, end int64)) ReadOpt {
	return func(c *readCfg) { c.progress = fn }
}

// Uncommitted reads read_uncommitted, up to the high watermark.
func Uncommitted() ReadOpt { return func(c *readCfg) { c.uncommitted = true } }

// ThroughHighWatermark has ReadStable read read_committed up to the high
// watermark captured when it is called, not the last stable offset: every
// record written before the call, once its transaction is decided. Kafka
// answers a transaction's commit before it writes the commit markers, so
// right after a commit returned the last stable offset can still be below
// the committed records; this read waits for the markers instead of
// missing them.
func ThroughHighWatermark() ReadOpt { return func(c *readCfg) { c.hwm = true } }

// IdleTimeout stops with a *StalledError when polls return nothing for d
// (default: wait until ctx is done).
func IdleTimeout(d time.Duration) ReadOpt { return func(c *readCfg) { c.idle = d } }

// ReadRanges reads topic's partitions in ranges read_committed and calls fn
// for every data record inside its partition's range, in offset order per
// partition. It returns once every partition reached its End, at the first
// error of fn or of a fetch, or when ctx is done. Control records are
// fetched (and not passed to fn) so that reaching End is observable when a
// partition ends with a transaction marker.
func ReadRanges(ctx context.Context, opts []kgo.Opt, topic string, ranges map[int32]Range, fn func(*kgo.Record) error, ro ...ReadOpt) error {
	var c readCfg
	for _, o := range ro {
		o(&c)
	}
	remaining := map[int32]int64{}
	starts := map[int32]kgo.Offset{}
	for p, r := range ranges {
		if r.Start < r.End {
			remaining[p] = r.End
			starts[p] = kgo.NewOffset().At(r.Start)
		}
	}
	if len(remaining) == 0 {
		return nil
	}
	if !c.uncommitted && c.idle == 0 {
		// read_committed without an idle timeout goes through ReadCommitted, which tracks its own
		// position: a consumer waiting for the record at End-1 stalls when
		// the partition ends in records it filtered out (a transaction a
		// broker crash aborted without a marker), and drops the
		// producer's next committed transaction after such an abort.
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return fmt.Errorf("kafka client: %w", err)
		}
		defer cl.Close()
		from, to := map[int32]int64{}, map[int32]int64{}
		for p, r := range ranges {
			from[p], to[p] = r.Start, r.End
		}
		return ReadCommitted(ctx, cl, topic, from, to, fn, c.progress)
	}
	iso := kgo.ReadCommitted()
	if c.uncommitted {
		iso = kgo.ReadUncommitted()
	}
	cl, err := kgo.NewClient(append(slices.Clip(opts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}),
		kgo.FetchIsolationLevel(iso),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	for len(remaining) > 0 {
		fs, err := poll(ctx, cl, c.idle)
		if err != nil {
			return fmt.Errorf("reading %s: %d partitions not at their end offset: %w", topic, len(remaining), err)
		}
		if fs.NumRecords() == 0 && c.idle > 0 {
			return &StalledError{Topic: topic, Partitions: slices.Sorted(maps.Keys(remaining)), Idle: c.idle}
		}
		if err := eachInRange(fs, remaining, fn); err != nil {
			return err
		}
	}
	return nil
}

// ReadStable reads every partition of topic from its start to the last
// stable offset captured when it is called (see StableRanges, ReadRanges).
func ReadStable(ctx context.Context, opts []kgo.Opt, topic string, fn func(*kgo.Record) error, ro ...ReadOpt) error {
	var c readCfg
	for _, o := range ro {
		o(&c)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	ranges, err := StableRanges(ctx, kadm.NewClient(cl), topic, c.uncommitted || c.hwm)
	cl.Close()
	if err != nil {
		return err
	}
	return ReadRanges(ctx, opts, topic, ranges, fn, ro...)
}

// poll fetches once, within idle when it is set; fetch errors other than
// the idle deadline are returned.
func poll(ctx context.Context, cl *kgo.Client, idle time.Duration) (kgo.Fetches, error) {
	pctx := ctx
	if idle > 0 {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, idle)
		defer cancel()
	}
	fs := cl.PollFetches(pctx)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var ferr error
	fs.EachError(func(t string, p int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return
		}
		ferr = errors.Join(ferr, fmt.Errorf("%s[%d]: %w", t, p, err))
	})
	return fs, ferr
}

// eachInRange passes the data records below their partition's end to fn and
// drops the partitions that reached it from remaining.
func eachInRange(fs kgo.Fetches, remaining map[int32]int64, fn func(*kgo.Record) error) error {
	var ferr error
	fs.EachRecord(func(r *kgo.Record) {
		end, ok := remaining[r.Partition]
		if !ok || ferr != nil {
			return
		}
		if r.Offset < end && !r.Attrs.IsControl() {
			ferr = fn(r)
		}
		if r.Offset+1 >= end {
			delete(remaining, r.Partition)
		}
	})
	return ferr
}
