package kafkax

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ReadCommitted reads partitions of topic, read_committed, from their start
// offsets (from) up to their end offsets (to, exclusive: usually the last
// stable offsets), and calls fn with every committed data record in offset
// order per partition. progress, when not nil, is called after every fetch
// with the partition's next offset.
//
// Why not a kgo consumer: a consumer does not say where its cursor is, so a
// restore that waits to see the record at end-1 never finishes when the
// partition ends in records it filtered out. That is what a broker crash
// leaves: a transaction open at the crash is aborted on restart without an
// abort marker (kfake's crash recovery), and the reader stalls below the
// last stable offset. Worse, a client's aborted-transaction filter pops a
// producer's aborted range only at that producer's next control record, so
// the first committed transaction after such a markerless abort is dropped
// too. This reader tracks its own position (every batch, kept or not,
// advances it) and ends an aborted range at the producer's next control
// record or at its next batch with a newer epoch (a new epoch cannot belong
// to the aborted transaction).
func ReadCommitted(ctx context.Context, cl *kgo.Client, topic string, from, to map[int32]int64,
	fn func(*kgo.Record) error, progress func(partition int32, next, end int64)) error {
	_, err := scan(ctx, cl, topic, from, to, fn, noErr(progress), scanOnce)
	return err
}

// ReadCommittedReused is ReadCommitted for readers that copy what they keep
// (bulk restores): fn gets the same *kgo.Record every time, valid only
// during the call, with Key, Value, Offset, Timestamp, Attrs, ProducerID and
// ProducerEpoch set (no headers, topic or partition). Decoding then
// allocates nothing per record.
func ReadCommittedReused(ctx context.Context, cl *kgo.Client, topic string, from, to map[int32]int64,
	fn func(*kgo.Record) error, progress func(partition int32, next, end int64)) error {
	_, err := scan(ctx, cl, topic, from, to, fn, noErr(progress), scanReuse)
	return err
}

// Follow reads partitions of topic read_committed from their offsets in
// from onwards, with no end: ReadCommitted for a reader that keeps up with
// a changelog. It long-polls until ctx ends (then it returns nil) or
// reading fails; brokers that stop answering are waited for. fn gets
// every committed data record, in offset order per partition; after each
// fetch response, at gets each fetched partition's position: the offset
// after every batch read, kept or not. So a partition whose last batches
// are an aborted transaction, or markers, still shows it has moved past
// them, which a kgo consumer does not say (it hands out no empty fetch).
// An error from fn or at ends the read.
func Follow(ctx context.Context, cl *kgo.Client, topic string, from map[int32]int64,
	fn func(*kgo.Record) error, at func(partition int32, next int64) error) error {
	to := make(map[int32]int64, len(from))
	for p := range from {
		to[p] = math.MaxInt64
	}
	_, err := scan(ctx, cl, topic, from, to, fn, func(p int32, next, _ int64) error { return at(p, next) }, scanFollow)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// noErr adapts a progress callback that cannot fail.
func noErr(progress func(partition int32, next, end int64)) func(int32, int64, int64) error {
	if progress == nil {
		return nil
	}
	return func(p int32, next, end int64) error {
		progress(p, next, end)
		return nil
	}
}

// scanMode selects how scan reads.
type scanMode int

const (
	scanOnce   scanMode = iota // records handed out as new *kgo.Record
	scanReuse                  // one reused *kgo.Record (ReadCommittedReused)
	scanFollow                 // no end (Follow): idle long polls are not backed off, filters keep no history
)

func scan(ctx context.Context, cl *kgo.Client, topic string, from, to map[int32]int64,
	fn func(*kgo.Record) error, progress func(partition int32, next, end int64) error, mode scanMode) (map[int32]*abortFilter, error) {
	reuse := mode == scanReuse
	next := map[int32]int64{}
	dec := kgo.DefaultDecompressor()
	var scratch kgo.Record
	filters := map[int32]*abortFilter{}
	for p, end := range to {
		start := from[p]
		if start < end {
			next[p] = start
			filters[p] = newAbortFilter(mode != scanFollow)
		}
	}
	adm := kadm.NewClient(cl)
	var leaders map[int32]int32
	var topicID [16]byte
	// A failed lookup of the leaders is waited out (the brokers do not
	// answer) once the read has started, and always when following: a
	// follower starts after its restore found the topic, and must outlast
	// outages from its first request on.
	patient := mode == scanFollow
	stalls := 0
	ahead := map[int32]*prefetch{} // by leader
	for len(next) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reading %s: %d partitions not read to their end: %w", topic, len(next), err)
		}
		if leaders == nil {
			l, id, err := partitionLeaders(ctx, adm, topic)
			switch {
			case err == nil:
				leaders, topicID, patient = l, id, true
			case !patient || errors.Is(err, errNoTopic):
				return nil, err // a restore with no broker from the start, or no such topic: the caller's to report
			default:
				// The brokers went away (or the topic is moving) in the
				// middle of a read: wait for them, as a kgo consumer
				// does, until ctx ends. Meanwhile a restore stays in
				// progress (not ready) and a follower's waiters time
				// out; failing would need a restart to recover.
				stalls++
				backoff(ctx, stalls)
				continue
			}
		}
		byLeader := map[int32][]int32{}
		for p := range next {
			l, ok := leaders[p]
			if !ok {
				return nil, fmt.Errorf("reading %s: partition %d does not exist", topic, p)
			}
			byLeader[l] = append(byLeader[l], p)
		}
		progressed, failed := false, false
		for leader, parts := range byLeader {
			var resp *kmsg.FetchResponse
			var err error
			if pf := ahead[leader]; pf != nil && pf.matches(parts, next) {
				r := <-pf.done
				resp, err = r.resp, r.err
			} else {
				resp, err = fetchOnce(ctx, cl, leader, topic, topicID, parts, next)
			}
			delete(ahead, leader)
			if err == nil {
				// Ask for what follows while this response is decoded.
				ahead[leader] = fetchAhead(ctx, cl, leader, topic, topicID, resp, next, to)
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("reading %s: %w", topic, err)
				}
				leaders, failed = nil, true // refresh metadata and retry
				continue
			}
			for _, rt := range resp.Topics {
				for i := range rt.Partitions {
					rp := &rt.Partitions[i]
					p := rp.Partition
					off, ok := next[p]
					if !ok {
						continue
					}
					if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
						if kerr.IsRetriable(err) {
							leaders, failed = nil, true
							continue
						}
						return nil, fmt.Errorf("reading %s[%d] at offset %d: %w", topic, p, off, err)
					}
					f := filters[p]
					f.learn(rp.AbortedTransactions)
					end := to[p]
					// Records at or past end are not passed on; the
					// position still moves past them (the caller stops
					// at end anyway).
					keep := func(r *kgo.Record) error {
						if r.Offset >= end || !f.keep(r) {
							return nil
						}
						return fn(r)
					}
					var nextOff int64
					if reuse {
						var err error
						if nextOff, err = eachRawRecord(rp.RecordBatches, off, dec, &scratch, keep); err != nil {
							return nil, fmt.Errorf("reading %s[%d] at offset %d: %w", topic, p, off, err)
						}
					} else {
						var fp kgo.FetchPartition
						fp, nextOff = kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
							KeepControlRecords: true,
							Offset:             off,
							IsolationLevel:     kgo.ReadUncommitted(), // aborts are filtered below
							Topic:              topic,
							Partition:          p,
						}, rp, dec, nil)
						if fp.Err != nil {
							return nil, fmt.Errorf("reading %s[%d] at offset %d: %w", topic, p, off, fp.Err)
						}
						for _, r := range fp.Records {
							if r.Offset >= end {
								break
							}
							if err := keep(r); err != nil {
								return nil, err
							}
						}
					}
					if nextOff > off {
						progressed = true
						next[p] = nextOff
					}
					if progress != nil {
						if err := progress(p, min(next[p], end), end); err != nil {
							return nil, err
						}
					}
					if next[p] >= end {
						delete(next, p)
					}
				}
			}
		}
		if progressed || mode == scanFollow && !failed {
			// Following, an idle response ended a long poll: ask again.
			stalls = 0
			continue
		}
		stalls++
		// Nothing moved: the leader moved, or the end is above what
		// the broker serves yet. Back off a little; ctx bounds it.
		backoff(ctx, stalls)
	}
	return filters, nil
}

// backoff waits 50 ms per stall so far, at most half a second, or until
// ctx ends.
func backoff(ctx context.Context, stalls int) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(min(stalls, 10)) * 50 * time.Millisecond):
	}
}

// prefetch is a fetch issued before the previous response was decoded,
// from the offsets that response's batch headers end at.
type prefetch struct {
	from map[int32]int64
	done chan fetchResult
}

type fetchResult struct {
	resp *kmsg.FetchResponse
	err  error
}

// matches reports whether the prefetch asked for exactly parts at next.
func (pf *prefetch) matches(parts []int32, next map[int32]int64) bool {
	if len(parts) != len(pf.from) {
		return false
	}
	for _, p := range parts {
		if o, ok := pf.from[p]; !ok || o != next[p] {
			return false
		}
	}
	return true
}

// fetchAhead starts fetching, for the partitions of resp that have more
// to read, from where resp's complete batches end, so that the broker
// serves the next response while this one is decoded. It returns nil when
// there is nothing to ask for (errors, no progress, ends reached); a
// prefetch whose offsets turn out not to be the reader's is dropped.
func fetchAhead(ctx context.Context, cl *kgo.Client, leader int32, topic string, id [16]byte, resp *kmsg.FetchResponse, next, to map[int32]int64) *prefetch {
	from := map[int32]int64{}
	for _, rt := range resp.Topics {
		for i := range rt.Partitions {
			rp := &rt.Partitions[i]
			off, ok := next[rp.Partition]
			if !ok || rp.ErrorCode != 0 {
				return nil
			}
			n := batchesEnd(rp.RecordBatches, off)
			if n <= off {
				return nil // no progress: let the reader back off
			}
			if n < to[rp.Partition] {
				from[rp.Partition] = n
			}
		}
	}
	if len(from) == 0 {
		return nil
	}
	parts := make([]int32, 0, len(from))
	for p := range from {
		parts = append(parts, p)
	}
	pf := &prefetch{from: from, done: make(chan fetchResult, 1)}
	go func() {
		resp, err := fetchOnce(ctx, cl, leader, topic, id, parts, from)
		pf.done <- fetchResult{resp, err}
	}()
	return pf
}

// batchesEnd is the offset after the last complete record batch of raw
// (from if none ends at or above it), as reading them will leave it.
func batchesEnd(raw []byte, from int64) int64 {
	next := from
	for len(raw) >= 27 {
		base := int64(binary.BigEndian.Uint64(raw))
		n := int(int32(binary.BigEndian.Uint32(raw[8:])))
		if n < 49 || 12+n > len(raw) || raw[16] != 2 {
			break // cut short, or not message format v2: no guess
		}
		next = max(next, base+int64(int32(binary.BigEndian.Uint32(raw[23:])))+1)
		raw = raw[12+n:]
	}
	return next
}

// errNoTopic is partitionLeaders' error for a topic the brokers do not
// have: a read waits out brokers that do not answer, not a missing topic.
var errNoTopic = errors.New("topic not found")

func partitionLeaders(ctx context.Context, adm *kadm.Client, topic string) (map[int32]int32, [16]byte, error) {
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return nil, [16]byte{}, fmt.Errorf("describing %s: %w", topic, err)
	}
	d, ok := td[topic]
	if !ok || d.Err != nil {
		return nil, [16]byte{}, fmt.Errorf("%w: %s (run `pcistream topology apply`): %v", errNoTopic, topic, d.Err)
	}
	out := map[int32]int32{}
	for p, pd := range d.Partitions {
		out[p] = pd.Leader
	}
	return out, d.ID, nil
}

func fetchOnce(ctx context.Context, cl *kgo.Client, leader int32, topic string, id [16]byte, parts []int32, next map[int32]int64) (*kmsg.FetchResponse, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 250
	req.MinBytes = 1
	req.MaxBytes = 32 << 20
	req.IsolationLevel = 1 // read_committed: bounded by the LSO, with the aborted list
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	for _, p := range parts {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p
		rp.FetchOffset = next[p]
		rp.CurrentLeaderEpoch = -1
		rp.LogStartOffset = -1
		rp.PartitionMaxBytes = 8 << 20
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(rctx, cl.Broker(int(leader)))
	if err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	return resp, nil
}

// abortFilter drops the records of aborted transactions, from the aborted
// list fetch responses carry (producer id, first offset).
type abortFilter struct {
	pending map[int64][]int64      // producer id -> first offsets of aborted txns not yet reached, ascending
	open    map[int64]int16        // producer id -> epoch of the aborted txn being skipped
	opened  map[int64]int64        // producer id -> first offset of that txn
	closed  map[int64]int64        // producer id -> offset where its last aborted txn ended
	commits map[ProducerEpoch]bool // commit markers seen (nil: not kept)
}

// newAbortFilter returns an empty filter; commits says whether it keeps
// the commit markers it sees (a reader with no end must not: one per
// transaction).
func newAbortFilter(commits bool) *abortFilter {
	f := &abortFilter{pending: map[int64][]int64{}, open: map[int64]int16{}, opened: map[int64]int64{}, closed: map[int64]int64{}}
	if commits {
		f.commits = map[ProducerEpoch]bool{}
	}
	return f
}

// learn adds the aborted transactions a fetch response lists. Responses
// list an aborted transaction as long as they overlap it: one already
// reached (open, or ended at or above its first offset) is not learned
// again.
func (f *abortFilter) learn(ats []kmsg.FetchResponseTopicPartitionAbortedTransaction) {
	for _, at := range ats {
		if e, ok := f.closed[at.ProducerID]; ok && at.FirstOffset <= e {
			continue
		}
		if o, ok := f.opened[at.ProducerID]; ok && at.FirstOffset <= o {
			continue
		}
		if slices.Contains(f.pending[at.ProducerID], at.FirstOffset) {
			continue
		}
		q := append(f.pending[at.ProducerID], at.FirstOffset)
		for i := len(q) - 1; i > 0 && q[i] < q[i-1]; i-- {
			q[i], q[i-1] = q[i-1], q[i]
		}
		f.pending[at.ProducerID] = q
	}
}

// close ends pid's open aborted transaction at offset at.
func (f *abortFilter) close(pid, at int64) {
	delete(f.open, pid)
	delete(f.opened, pid)
	f.closed[pid] = at
}

// keep reports whether r is a committed data record.
func (f *abortFilter) keep(r *kgo.Record) bool {
	pid := r.ProducerID
	if ep, ok := f.open[pid]; ok && r.ProducerEpoch > ep {
		f.close(pid, r.Offset-1) // a newer epoch: the aborted txn ended (crash recovery wrote no marker)
	}
	if _, ok := f.open[pid]; !ok {
		if q := f.pending[pid]; len(q) > 0 && r.Offset >= q[0] && r.Attrs.IsTransactional() {
			f.pending[pid] = q[1:]
			if len(f.pending[pid]) == 0 {
				delete(f.pending, pid)
			}
			f.open[pid], f.opened[pid] = r.ProducerEpoch, q[0]
		}
	}
	_, aborted := f.open[pid]
	if r.Attrs.IsControl() {
		// A control record's key is version (int16), type (int16): 1 is COMMIT.
		if f.commits != nil && len(r.Key) >= 4 && binary.BigEndian.Uint16(r.Key[2:4]) == 1 {
			f.commits[ProducerEpoch{r.ProducerID, r.ProducerEpoch}] = true
		}
		if aborted {
			f.close(pid, r.Offset)
		}
		return false
	}
	return !aborted
}
