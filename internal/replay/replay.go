// Package replay re-runs a processor over an offset or time range of its
// input topic, outside the processor's consumer group: the live workers and
// their committed offsets are not touched. A replay either reports what it
// would write (dry run) or writes it in transactions of its own, and it is
// always recorded as an audit event.
//
// Processors are deterministic over their input (tokens per key version,
// context ids and audit ids derived from record coordinates), so a replay of
// the same offsets writes byte-identical records: downstream consumers that
// deduplicate on key see nothing new.
package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/eos"
)

// idleTimeout ends a replay whose remaining partitions returned nothing for
// this long: only markers and aborted records are left below their ends.
const idleTimeout = 3 * time.Second

// Range selects the records to replay from one topic.
type Range struct {
	Topic string
	// Partitions to replay; empty means all.
	Partitions []int32
	// FromOffset/ToOffset bound the range (inclusive, exclusive); -1 for
	// the start and the end as of the replay's start.
	FromOffset, ToOffset int64
	// FromTime/ToTime, when non-zero, bound the range by record time
	// instead (resolved to offsets with ListOffsets).
	FromTime, ToTime time.Time
	// Only, when set, replays just these offsets per partition (a DLQ
	// redrive), within the bounds above; other records are read and
	// skipped.
	Only map[int32][]int64
}

// Options configures Run.
type Options struct {
	// ClientOpts connect to the cluster (kafkax.Opts).
	ClientOpts []kgo.Opt
	// DryRun processes the records but writes nothing.
	DryRun bool
	// TransactionalID for the replay's writes (default pcistream-replay-<topic>).
	TransactionalID string
	// BatchSize is the number of input records per transaction (default 500).
	BatchSize int
	// Progress, when set, is called after every batch.
	Progress func(Result)
}

// Result says what a replay read and wrote.
type Result struct {
	Read     int64            // input records replayed
	Written  map[string]int64 // output records per topic (would-be, for a dry run)
	Ranges   map[int32][2]int64
	DryRun   bool
	Duration time.Duration
}

// Run replays r through p. The audit event describing the replay is the
// caller's to write (it knows the operator).
func Run(ctx context.Context, p eos.Processor, r Range, o Options) (Result, error) {
	start := time.Now()
	res := Result{Written: map[string]int64{}, Ranges: map[int32][2]int64{}, DryRun: o.DryRun}
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.TransactionalID == "" {
		o.TransactionalID = "pcistream-replay-" + r.Topic
	}
	admCl, err := kgo.NewClient(o.ClientOpts...)
	if err != nil {
		return res, fmt.Errorf("kafka client: %w", err)
	}
	defer admCl.Close()
	bounds, err := resolve(ctx, kadm.NewClient(admCl), r)
	if err != nil {
		return res, err
	}
	only := narrow(bounds, r.Only)
	res.Ranges = bounds
	consume := map[string]map[int32]kgo.Offset{r.Topic: {}}
	remaining := 0
	for p, b := range bounds {
		if b[0] < b[1] {
			consume[r.Topic][p] = kgo.NewOffset().At(b[0])
			remaining++
		}
	}
	if remaining == 0 {
		res.Duration = time.Since(start)
		return res, nil
	}
	copts := append(append([]kgo.Opt(nil), o.ClientOpts...),
		kgo.ConsumePartitions(consume),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.MaxBufferedRecords(o.BatchSize))
	if !o.DryRun {
		copts = append(copts, kgo.TransactionalID(o.TransactionalID), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	}
	cl, err := kgo.NewClient(copts...)
	if err != nil {
		return res, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()

	var out eos.Out
	done := map[int32]bool{}
	for remaining > 0 {
		pctx, cancel := context.WithTimeout(ctx, idleTimeout)
		fs := cl.PollRecords(pctx, o.BatchSize)
		cancel()
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if fs.NumRecords() == 0 && pctx.Err() != nil {
			// What is left below the end offsets is transaction markers
			// and aborted records, which read_committed never returns.
			break
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return res, ferr
		}
		out.Reset()
		n := int64(0)
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
			end := bounds[ftp.Partition][1]
			for _, rec := range ftp.Records {
				if done[ftp.Partition] || rec.Offset >= end {
					break
				}
				if only == nil || only[ftp.Partition][rec.Offset] {
					if ferr = p.Process(ctx, rec, &out); ferr != nil {
						return
					}
					n++
				}
				if rec.Offset+1 >= end {
					done[ftp.Partition] = true
					remaining--
				}
			}
		})
		if ferr != nil {
			return res, fmt.Errorf("process: %w", ferr)
		}
		if be, ok := p.(eos.BatchEnder); ok && n > 0 {
			if err := be.EndBatch(ctx, &out); err != nil {
				return res, fmt.Errorf("process: %w", err)
			}
		}
		if !o.DryRun && len(out.Records()) > 0 {
			if err := writeTxn(ctx, cl, out.Records()); err != nil {
				return res, err
			}
		}
		if e, ok := p.(eos.Ender); ok {
			e.Ended(true)
		}
		res.Read += n
		for _, rec := range out.Records() {
			res.Written[rec.Topic]++
		}
		if o.Progress != nil {
			res.Duration = time.Since(start)
			o.Progress(res)
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

func writeTxn(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	perr := cl.ProduceSync(ctx, recs...).FirstErr()
	try := kgo.TryCommit
	if perr != nil {
		try = kgo.TryAbort
	}
	if err := cl.EndTransaction(context.WithoutCancel(ctx), try); err != nil {
		return fmt.Errorf("end transaction: %w", err)
	}
	if perr != nil {
		return fmt.Errorf("produce (transaction aborted, nothing written for this batch): %w", perr)
	}
	return nil
}

// resolve turns r into per-partition [from, to) offsets.
func resolve(ctx context.Context, adm *kadm.Client, r Range) (map[int32][2]int64, error) {
	starts, err := adm.ListStartOffsets(ctx, r.Topic)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", r.Topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, r.Topic)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", r.Topic, err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("topic %s: %w", r.Topic, err)
	}
	want := map[int32]bool{}
	for _, p := range r.Partitions {
		want[p] = true
	}
	out := map[int32][2]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if len(want) > 0 && !want[o.Partition] {
			return
		}
		s, _ := starts.Lookup(r.Topic, o.Partition)
		from, to := s.Offset, o.Offset
		if r.FromOffset >= 0 && r.FromOffset > from {
			from = r.FromOffset
		}
		if r.ToOffset >= 0 && r.ToOffset < to {
			to = r.ToOffset
		}
		out[o.Partition] = [2]int64{from, to}
	})
	if len(want) > 0 && len(out) != len(want) {
		return nil, fmt.Errorf("topic %s has no partition among %v", r.Topic, r.Partitions)
	}
	for _, tb := range []struct {
		t    time.Time
		from bool
	}{{r.FromTime, true}, {r.ToTime, false}} {
		if tb.t.IsZero() {
			continue
		}
		offs, err := adm.ListOffsetsAfterMilli(ctx, tb.t.UnixMilli(), r.Topic)
		if err != nil {
			return nil, fmt.Errorf("offsets for time %s: %w", tb.t.Format(time.RFC3339), err)
		}
		offs.Each(func(o kadm.ListedOffset) {
			b, ok := out[o.Partition]
			if !ok || o.Err != nil {
				return
			}
			if tb.from && o.Offset > b[0] {
				b[0] = o.Offset
			}
			if !tb.from && o.Offset < b[1] {
				b[1] = o.Offset
			}
			out[o.Partition] = b
		})
	}
	return out, nil
}

// narrow shrinks bounds to the partitions and offset spans of only, and
// returns only as a set; with no only it changes nothing and returns nil.
func narrow(bounds map[int32][2]int64, only map[int32][]int64) map[int32]map[int64]bool {
	if only == nil {
		return nil
	}
	set := map[int32]map[int64]bool{}
	for p, b := range bounds {
		offs := only[p]
		if len(offs) == 0 {
			delete(bounds, p)
			continue
		}
		set[p] = map[int64]bool{}
		lo, hi := int64(-1), int64(-1)
		for _, o := range offs {
			if o < b[0] || o >= b[1] {
				continue
			}
			set[p][o] = true
			if lo < 0 || o < lo {
				lo = o
			}
			hi = max(hi, o+1)
		}
		if lo < 0 {
			delete(bounds, p)
			continue
		}
		bounds[p] = [2]int64{lo, hi}
	}
	return set
}
