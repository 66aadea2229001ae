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
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/eos"
)

// idleTimeout fails a replay whose remaining partitions returned nothing
// for this long before their ends (a stall: markers are fetched, so the end
// of a range is always observable). Generous: a loaded broker or a first
// fetch after a join can take seconds, and ending early would report a
// partial replay as done.
const idleTimeout = 30 * time.Second

// joinTimeout bounds the wait for a job's group to assign its partitions.
const joinTimeout = 2 * time.Minute

// Range selects the records to replay from one topic.
type Range struct {
	Topic string
	// Partitions to replay; empty means all.
	Partitions []int32
	// FromOffset/ToOffset bound the range (inclusive, exclusive); -1 for
	// the start and the end (last stable offset) as of the replay's start.
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
	// DryRun processes the records but writes nothing and commits nothing.
	DryRun bool
	// Group, when set, makes the replay a resumable job: the input offsets
	// are committed to this consumer group (the job's own, never a live
	// processor's) in the same transaction as the outputs, and a later Run
	// with the same Group starts after the last committed transaction.
	// Without it a replay keeps no progress.
	Group string
	// TransactionalID for the replay's writes (default the Group, else
	// pcistream-replay-<topic>). A job keeps one id across runs, so a re-run
	// fences and aborts whatever an interrupted run left open.
	TransactionalID string
	// BatchSize is the number of input records per transaction (default 500).
	BatchSize int
	// Progress, when set, is called after every batch.
	Progress func(Result)
	// Lookback, with a Range.FromTime, first runs the processor over the
	// records of this span before the range (the seed), keeping only its
	// outputs to SeedTopics: a stateful processor (the tokenizer's
	// idempotency window) then enters the range with the state its live run
	// had there. Seed records are part of the job (a resumed job does not
	// seed twice) but are not counted as read.
	Lookback time.Duration
	// SeedTopics are the output topics kept while seeding (state changelogs).
	SeedTopics []string
	// Restore, when set, loads the processor's state (the tokenizer's
	// idempotency table from the job's changelog). Run calls it after the
	// job's transactional id is fenced, so the state holds every
	// transaction an earlier run committed (markers written) and none it
	// left open, before reading the job's progress.
	Restore func(ctx context.Context) error
}

// Result says what a replay read and wrote.
type Result struct {
	Read     int64            // input records replayed
	Written  map[string]int64 // output records per topic (would-be, for a dry run)
	Ranges   map[int32][2]int64
	DryRun   bool
	Duration time.Duration
	// Resumed holds, per partition, the offset a job resumed from when an
	// earlier run of it had committed progress there.
	Resumed map[int32]int64
	// Finished says the job's earlier runs had already covered the whole
	// range: nothing was read or written.
	Finished bool
	// Batches is the number of transactions committed (batches, for a dry
	// run).
	Batches int
	// Seeded is the number of look-back records run only for their state.
	Seeded int64
}

// Run replays r through p. The audit event describing the replay is the
// caller's to write (it knows the operator).
func Run(ctx context.Context, p eos.Processor, r Range, o Options) (Result, error) {
	start := time.Now()
	res := Result{Written: map[string]int64{}, Ranges: map[int32][2]int64{}, DryRun: o.DryRun, Resumed: map[int32]int64{}}
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.TransactionalID == "" {
		o.TransactionalID = cmp.Or(o.Group, "pcistream-replay-"+r.Topic)
	}
	admCl, err := kgo.NewClient(o.ClientOpts...)
	if err != nil {
		return res, fmt.Errorf("kafka client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	bounds, err := resolve(ctx, adm, r)
	if err != nil {
		return res, err
	}
	only := narrow(bounds, r.Only)
	res.Ranges = bounds
	if !o.DryRun {
		// A dry run writes nothing and must not fence a running job.
		if err := fence(ctx, admCl, o.TransactionalID); err != nil {
			return res, err
		}
	}
	if o.Restore != nil {
		if err := o.Restore(ctx); err != nil {
			return res, err
		}
	}
	read, err := seedBounds(ctx, adm, r, o, bounds)
	if err != nil {
		return res, err
	}
	starts, err := resume(ctx, adm, o.Group, r.Topic, read, res.Resumed)
	if err != nil {
		return res, err
	}
	if len(starts) == 0 {
		res.Finished = len(res.Resumed) > 0
		res.Duration = time.Since(start)
		return res, nil
	}
	src, err := open(r.Topic, starts, o)
	if err != nil {
		return res, err
	}
	defer src.close()
	err = loop(ctx, p, src, read, bounds, only, len(starts), o, &res, start)
	res.Duration = time.Since(start)
	return res, err
}

// resume returns the offset each partition of bounds starts from: its
// lower bound, or the job's committed offset when that is further. Fully
// covered partitions are left out; partitions where the job had progress
// are noted in resumed.
func resume(ctx context.Context, adm *kadm.Client, group, topic string, bounds map[int32][2]int64, resumed map[int32]int64) (map[int32]int64, error) {
	var committed kadm.OffsetResponses
	if group != "" {
		var err error
		// A job's first run finds no group: no progress yet.
		if committed, err = adm.FetchOffsets(ctx, group); err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
			return nil, fmt.Errorf("read the progress of replay job %s: %w", group, err)
		}
	}
	starts := map[int32]int64{}
	for p, b := range bounds {
		from := b[0]
		if c, ok := committed.Lookup(topic, p); ok && c.Err == nil && c.At > from {
			from = c.At
			resumed[p] = c.At
		}
		if from < b[1] {
			starts[p] = from
		}
	}
	return starts, nil
}

// source is where a replay polls its input and how it ends a batch.
type source interface {
	// ready returns once the source can be polled (a job has joined its
	// group), so that the idle timeout does not count the join.
	ready(ctx context.Context) error
	poll(ctx context.Context, n int) kgo.Fetches
	// begin starts a batch; emit hands over one output record; commit
	// ends the batch, writing its outputs and (for a job) the offsets of
	// everything polled in one transaction.
	begin() error
	emit(ctx context.Context, rec *kgo.Record)
	commit(ctx context.Context) error
	abort(ctx context.Context)
	close()
}

// open returns the source for o: a dry-run reader, a transactional writer,
// or a job's GroupTransactSession.
func open(topic string, starts map[int32]int64, o Options) (source, error) {
	base := append([]kgo.Opt{kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil))}, o.ClientOpts...)
	// Control records are kept so that a range ending in a transaction
	// marker (or in aborted records, which a marker follows) is seen to end.
	base = append(base, kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(), kgo.MaxBufferedRecords(o.BatchSize))
	if o.DryRun || o.Group == "" {
		consume := map[string]map[int32]kgo.Offset{topic: {}}
		for p, off := range starts {
			consume[topic][p] = kgo.NewOffset().At(off)
		}
		opts := append(base, kgo.ConsumePartitions(consume))
		if !o.DryRun {
			opts = append(opts, kgo.TransactionalID(o.TransactionalID))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return nil, fmt.Errorf("kafka client: %w", err)
		}
		return &plain{cl: cl, dry: o.DryRun}, nil
	}
	assigned := make(chan struct{})
	var once sync.Once
	sess, err := kgo.NewGroupTransactSession(append(base,
		kgo.ConsumerGroup(o.Group),
		// A static member: a re-run replaces a killed run's member at
		// once instead of waiting out its session timeout.
		kgo.InstanceID(o.Group),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			once.Do(func() { close(assigned) })
		}),
		kgo.ConsumeTopics(topic),
		kgo.TransactionalID(o.TransactionalID),
		kgo.RequireStableFetchOffsets(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.AdjustFetchOffsetsFn(func(_ context.Context, m map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
			// Partitions outside the range are read from the end (and
			// ignored); the range's start from max(start, committed).
			for p, off := range m[topic] {
				s, ok := starts[p]
				if !ok {
					m[topic][p] = kgo.NewOffset().AtEnd()
				} else if off.EpochOffset().Offset < s {
					m[topic][p] = kgo.NewOffset().At(s)
				}
			}
			return m, nil
		}),
	)...)
	if err != nil {
		return nil, fmt.Errorf("replay job %s: %w", o.Group, err)
	}
	return &job{sess: sess, assigned: assigned}, nil
}

// loop polls and processes batches until every partition reached its end.
func loop(ctx context.Context, p eos.Processor, src source, bounds, rng map[int32][2]int64, only map[int32]map[int64]bool, remaining int, o Options, res *Result, start time.Time) error {
	if err := src.ready(ctx); err != nil {
		return fmt.Errorf("join the replay job's group: %w", err)
	}
	var out, seedOut eos.Out
	keep := map[string]bool{}
	for _, t := range o.SeedTopics {
		keep[t] = true
	}
	done := map[int32]bool{}
	for remaining > 0 {
		pctx, cancel := context.WithTimeout(ctx, idleTimeout)
		fs := src.poll(pctx, o.BatchSize)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		if fs.NumRecords() == 0 && pctx.Err() != nil {
			// Markers are fetched, so every range's end is observable:
			// a silence this long is a stall (a transaction a broker
			// crash aborted without a marker, an unreachable leader),
			// never the end of the range.
			return fmt.Errorf("replay: %d partitions returned nothing for %v before reaching the end offset captured at the start (re-run the same job to resume; check the brokers)", remaining, idleTimeout)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		if fs.NumRecords() == 0 {
			continue
		}
		if err := src.begin(); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		out.Reset()
		n, seeded, emitted := int64(0), int64(0), 0
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
			b, ok := bounds[ftp.Partition]
			if !ok {
				return
			}
			for _, rec := range ftp.Records {
				if ferr != nil || done[ftp.Partition] || rec.Offset >= b[1] {
					break
				}
				if rec.Attrs.IsControl() {
					// A transaction marker: nothing to process, but
					// it can be the range's last offset.
				} else if rec.Offset >= b[0] && rec.Offset < rng[ftp.Partition][0] {
					// A look-back record: only its state outputs.
					seedOut.Reset()
					if ferr = p.Process(ctx, rec, &seedOut); ferr != nil {
						return
					}
					seeded++
					for _, o := range seedOut.Records() {
						if keep[o.Topic] {
							src.emit(ctx, o)
						}
					}
				} else if rec.Offset >= b[0] && (only == nil || only[ftp.Partition][rec.Offset]) {
					if ferr = p.Process(ctx, rec, &out); ferr != nil {
						return
					}
					n++
					// Outputs go out as they are made, inside the open
					// transaction, as the live loop does.
					for _, o := range out.Records()[emitted:] {
						src.emit(ctx, o)
					}
					emitted = len(out.Records())
				}
				if rec.Offset+1 >= b[1] {
					done[ftp.Partition] = true
					remaining--
				}
			}
		})
		if be, ok := p.(eos.BatchEnder); ok && n > 0 && ferr == nil {
			ferr = be.EndBatch(ctx, &out)
			for _, o := range out.Records()[emitted:] {
				src.emit(ctx, o)
			}
		}
		if ferr != nil {
			src.abort(ctx)
			return fmt.Errorf("process: %w", ferr)
		}
		err := src.commit(ctx)
		if e, ok := p.(eos.Ender); ok {
			e.Ended(err == nil)
		}
		if err != nil {
			return err
		}
		res.Batches++
		res.Read += n
		res.Seeded += seeded
		for _, rec := range out.Records() {
			res.Written[rec.Topic]++
		}
		if o.Progress != nil {
			res.Duration = time.Since(start)
			o.Progress(*res)
		}
	}
	return nil
}

// plain reads assigned partitions; it writes in transactions of its own
// unless it is a dry run, and keeps no progress.
type plain struct {
	cl   *kgo.Client
	dry  bool
	recs []*kgo.Record
}

func (s *plain) poll(ctx context.Context, n int) kgo.Fetches { return s.cl.PollRecords(ctx, n) }
func (s *plain) begin() error                                { s.recs = s.recs[:0]; return nil }
func (s *plain) emit(_ context.Context, r *kgo.Record)       { s.recs = append(s.recs, r) }
func (s *plain) ready(context.Context) error                 { return nil }
func (s *plain) abort(context.Context)                       {}
func (s *plain) close()                                      { s.cl.Close() }
func (s *plain) commit(ctx context.Context) error {
	if s.dry || len(s.recs) == 0 {
		return nil
	}
	return writeTxn(ctx, s.cl, s.recs)
}

// job is a replay job's GroupTransactSession: outputs and the input offsets
// of each batch commit together, to the job's own group.
type job struct {
	sess     *kgo.GroupTransactSession
	assigned chan struct{}
	mu       sync.Mutex
	prodErr  error
}

func (s *job) poll(ctx context.Context, n int) kgo.Fetches { return s.sess.PollRecords(ctx, n) }
func (s *job) begin() error                                { s.prodErr = nil; return s.sess.Begin() }
func (s *job) ready(ctx context.Context) error {
	// The client joins in the background from its creation on.
	t := time.NewTimer(joinTimeout)
	defer t.Stop()
	select {
	case <-s.assigned:
		return nil
	case <-t.C:
		return fmt.Errorf("no partitions assigned after %v (may this principal read the topic and use the group? is the same job running elsewhere?)", joinTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *job) abort(ctx context.Context) {
	_, _ = s.sess.End(context.WithoutCancel(ctx), kgo.TryAbort) // the processing error is what the caller reports
}
func (s *job) close() { s.sess.Close() }
func (s *job) emit(ctx context.Context, r *kgo.Record) {
	s.sess.Produce(ctx, r, func(r *kgo.Record, err error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil && s.prodErr == nil {
			s.prodErr = fmt.Errorf("produce to %s: %w", r.Topic, err)
		}
	})
}

func (s *job) commit(ctx context.Context) error {
	ferr := s.sess.Client().Flush(ctx)
	s.mu.Lock()
	perr := cmp.Or(s.prodErr, ferr)
	s.mu.Unlock()
	try := kgo.TryCommit
	if perr != nil {
		try = kgo.TryAbort
	}
	committed, err := s.sess.End(context.WithoutCancel(ctx), try)
	switch {
	case err != nil:
		return fmt.Errorf("end transaction (outcome unknown; re-run the same job to resume from what committed): %w", err)
	case perr != nil:
		return fmt.Errorf("produce (transaction aborted; re-run the same job to resume): %w", perr)
	case !committed:
		return errors.New("transaction aborted by a rebalance of the job's group (is the same job running elsewhere?); re-run it to resume")
	}
	return nil
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
	// The last stable offsets, not the high watermarks: a read_committed
	// reader cannot pass an undecided transaction, so a range ending inside
	// one would never be reached.
	ends, err := adm.ListCommittedOffsets(ctx, r.Topic)
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

// seedBounds returns the offsets a run reads: bounds, extended back by
// o.Lookback before r.FromTime where the log still holds records (the seed).
func seedBounds(ctx context.Context, adm *kadm.Client, r Range, o Options, bounds map[int32][2]int64) (map[int32][2]int64, error) {
	read := make(map[int32][2]int64, len(bounds))
	for p, b := range bounds {
		read[p] = b
	}
	if o.Lookback <= 0 || r.FromTime.IsZero() || r.Only != nil {
		return read, nil
	}
	starts, err := adm.ListStartOffsets(ctx, r.Topic)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", r.Topic, err)
	}
	offs, err := adm.ListOffsetsAfterMilli(ctx, r.FromTime.Add(-o.Lookback).UnixMilli(), r.Topic)
	if err != nil {
		return nil, fmt.Errorf("offsets for the look-back before %s: %w", r.FromTime.Format(time.RFC3339), err)
	}
	offs.Each(func(lo kadm.ListedOffset) {
		b, ok := read[lo.Partition]
		if !ok || lo.Err != nil {
			return
		}
		from := lo.Offset
		if s, ok := starts.Lookup(r.Topic, lo.Partition); ok && s.Offset > from {
			from = s.Offset
		}
		if from < b[0] && b[0] < b[1] {
			read[lo.Partition] = [2]int64{from, b[1]}
		}
	})
	return read, nil
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
