package state

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pcistream/pcistream/internal/kafkax"
)

// Follower keeps a Store up to date with every partition of a changelog
// topic that several writers share and no one owns (the HTTP gateway's
// Idempotency-Key topic: every gateway instance writes keys of every
// partition). It restores each partition from the store's checkpoint, then
// tails the topic read_committed, applying batches together with their
// checkpoint as Restore does.
//
// Writers tell the follower about their own committed changelog records
// (Committed): those are applied at once, and skipped when the tail reads
// them back. ListKeyEnds then WaitFor is the exactness barrier: it
// returns once every record of the keys' partitions committed before the
// listing is in the store, so a key that is not there afterwards was not
// committed by anyone when the listing was sent. The barrier is the partition's high watermark, not
// its last stable offset: a transaction committed after another one opened
// lies above the last stable offset until that one ends, so a barrier at
// the last stable offset would miss it; the read_committed tail passes the
// high watermark only once every transaction open at the listing is
// decided.
type Follower struct {
	store *Store
	cl    *Changelog
	o     FollowerOpts
	part  kgo.TopicPartitioner

	applyMu sync.Mutex          // serialises Apply calls, which write checkpoints
	saved   map[int32]time.Time // last checkpoint write per partition, under applyMu

	mu      sync.Mutex
	cps     map[int32]Checkpoint
	own     map[int32]map[int64]struct{}
	changed chan struct{} // closed and replaced whenever a position moves
	ready   bool
	err     error

	lists listings
	// heard is when the tail last got a fetch response (UnixNano; 0
	// before it started): Ready reports a tail that stopped hearing.
	heard atomic.Int64
	// filter proves new keys absent without a Pebble read (nil: off).
	filter *followerFilter
}

// FollowerOpts configures a Follower.
type FollowerOpts struct {
	// Window: entries older than this (stream time) are not restored and
	// are expired from the store. 0 keeps entries forever.
	Window time.Duration
	// Logger receives restore and tail progress (default slog.Default()).
	Logger *slog.Logger
	// FilterBytes, when positive and Window is set, keeps an in-memory
	// filter of the store's keys of at most this many bytes, so Get answers
	// a key nobody wrote without reading Pebble (see followerFilter). Past the
	// budget, lookups read Pebble as without it.
	FilterBytes int64
	// StaleAfter: Ready fails once the tail has had no fetch response for
	// this long (default DefaultStaleAfter; it gets one at least every
	// quarter second when the brokers answer, records or not).
	StaleAfter time.Duration
}

// DefaultStaleAfter is FollowerOpts.StaleAfter's default.
const DefaultStaleAfter = 10 * time.Second

// NewFollower returns a follower of cl into store; Run starts it. The
// changelog's records must be partitioned by kgo's default (Kafka
// murmur2) key partitioner: Partition computes the same mapping.
func NewFollower(store *Store, cl *Changelog, o FollowerOpts) *Follower {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.Window > 0 {
		w := o.Window.Milliseconds()
		user := cl.Filter
		cl.Filter = func(r *kgo.Record, streamTime int64) bool {
			return r.Timestamp.UnixMilli() > streamTime-w && (user == nil || user(r, streamTime))
		}
	}
	f := &Follower{store: store, cl: cl, o: o, part: kgo.StickyKeyPartitioner(nil).ForTopic(cl.Topic),
		cps: map[int32]Checkpoint{}, saved: map[int32]time.Time{}, own: map[int32]map[int64]struct{}{}, changed: make(chan struct{})}
	if o.Window > 0 && o.FilterBytes > 0 {
		f.filter = newFollowerFilter(o.Window.Milliseconds(), o.FilterBytes)
	}
	return f
}

// Partition is the changelog partition of key (0 before Run has listed the
// partitions).
func (f *Follower) Partition(key []byte) int32 {
	f.mu.Lock()
	n := len(f.cps)
	f.mu.Unlock()
	if n == 0 {
		return 0
	}
	if key == nil {
		return int32(f.part.Partition(&kgo.Record{Key: key}, n))
	}
	// kgo's default partitioner of a keyed record, without the record it
	// would need (one allocation per lookup on the gateway's path).
	return int32((murmur2(key) & 0x7fffffff) % uint32(n))
}

// murmur2 is Kafka's key hash (the Java client's Utils.murmur2, which kgo's
// StickyKeyPartitioner(nil) uses for keyed records).
func murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for ; len(b) >= 4; b = b[4:] {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// Ready is nil once every partition is restored and the tail runs.
func (f *Follower) Ready() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.err != nil:
		return fmt.Errorf("%s: %w", f.cl.Topic, f.err)
	case !f.ready:
		return fmt.Errorf("%s: state not restored yet", f.cl.Topic)
	}
	// Without traffic nothing else would notice the brokers went away:
	// the tail stops hearing from them, and keys cannot be checked.
	if h := f.heard.Load(); h != 0 {
		if d := time.Since(time.Unix(0, h)); d > f.o.StaleAfter {
			return fmt.Errorf("%s: no answer from Kafka for %s: the state tail is stale and Idempotency-Keys cannot be checked; check the brokers", f.cl.Topic, d.Round(time.Second))
		}
	}
	if err := f.lists.lastErr(); err != nil {
		// Try again in the background: an unready instance gets no
		// traffic, so without this it would never learn Kafka is back.
		f.lists.probe(f.listEnds)
		return err
	}
	return nil
}

// WaitReady blocks until the follower is ready, failed, or ctx is done.
func (f *Follower) WaitReady(ctx context.Context) error {
	for {
		f.mu.Lock()
		ready, err, ch := f.ready, f.err, f.changed
		f.mu.Unlock()
		if err != nil {
			return fmt.Errorf("%s: %w", f.cl.Topic, err)
		}
		if ready {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("state of %s not restored: %w", f.cl.Topic, ctx.Err())
		}
	}
}

// Get returns key's entry if it is live at now (within the window).
func (f *Follower) Get(key []byte, now time.Time) (Entry, bool, error) {
	part := f.Partition(key)
	if f.filter != nil && !f.filter.mayContain(part, key, now.UnixMilli()) {
		return Entry{}, false, nil
	}
	e, ok, err := f.store.Get(part, key)
	if err != nil || !ok {
		return Entry{}, false, err
	}
	if f.o.Window > 0 && e.TS <= now.Add(-f.o.Window).UnixMilli() {
		return Entry{}, false, nil
	}
	return e, true, nil
}

// Committed applies changelog records the caller has just committed
// (produced records carry their partition and offset). Records of other
// topics are ignored. The checkpoint does not move: records of other
// writers below them may not be read yet; the tail skips these when it
// reaches them.
func (f *Follower) Committed(recs []*kgo.Record) error {
	var parts []PartPuts
	var offsets [][]int64 // per parts entry
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.mu.Lock()
	for _, r := range recs {
		if r.Topic != f.cl.Topic || r.Offset < f.cps[r.Partition].Next {
			continue // another topic's, or the tail was first
		}
		i := 0
		for i < len(parts) && parts[i].Part != r.Partition {
			i++
		}
		if i == len(parts) {
			parts = append(parts, PartPuts{Part: r.Partition, CP: f.cps[r.Partition]})
			offsets = append(offsets, nil)
		}
		parts[i].Puts = append(parts[i].Puts, Put{Key: r.Key, Value: r.Value, TS: r.Timestamp.UnixMilli()})
		offsets[i] = append(offsets[i], r.Offset)
	}
	f.mu.Unlock()
	if len(parts) == 0 {
		return nil
	}
	for _, pp := range parts {
		f.filterAdd(pp.Part, pp.Puts)
	}
	// One batch for every partition of the transaction. The checkpoints
	// do not move (records of other writers below these may not be read
	// yet); they are written unchanged.
	if err := f.store.ApplyParts(parts); err != nil {
		// Not marked as ours: the tail applies them when it reads them.
		return err
	}
	f.mu.Lock()
	for i, pp := range parts {
		own := f.own[pp.Part]
		if own == nil {
			own = map[int64]struct{}{}
			f.own[pp.Part] = own
		}
		for _, o := range offsets[i] {
			own[o] = struct{}{}
		}
	}
	f.mu.Unlock()
	return nil
}

// ListKeyEnds lists, with one ListOffsets request sent now, the high
// watermarks of the keys' partitions: every record committed before the
// call lies below them.
func (f *Follower) ListKeyEnds(ctx context.Context, keys [][]byte) (map[int32]int64, error) {
	var parts []int32
	for _, k := range keys {
		if p := f.Partition(k); !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	ends, err := f.listEndsOf(ctx, parts)
	f.lists.setLast(err)
	return ends, err
}

// WaitFor returns once the tail has read each partition of ends up to its
// offset, or ctx ends. open are the caller's records in its own open
// transaction (nil: none): a partition's wait stops at the first of them,
// since the read_committed tail cannot pass them before that transaction
// ends. That loses nothing committed before the caller listed ends if the
// caller produced open after it had formed what it checks (TxnCommitter):
// such a commit was acknowledged, so written, before that, and lies below
// open as well as below ends.
func (f *Follower) WaitFor(ctx context.Context, ends map[int32]int64, open []*kgo.Record) error {
	for _, r := range open {
		if e, ok := ends[r.Partition]; ok && r.Topic == f.cl.Topic && r.Offset < e {
			ends[r.Partition] = r.Offset
		}
	}
	for p, end := range ends {
		if err := f.waitFor(ctx, p, end); err != nil {
			return err
		}
	}
	return nil
}

// waitFor returns once the tail has read part up to end, or ctx ends.
func (f *Follower) waitFor(ctx context.Context, part int32, end int64) error {
	for {
		f.mu.Lock()
		next, ferr, ch := f.cps[part].Next, f.err, f.changed
		f.mu.Unlock()
		if next >= end {
			return nil
		}
		if ferr != nil {
			return fmt.Errorf("%s: %w", f.cl.Topic, ferr)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("state: %s[%d] not read up to offset %d (at %d): %w", f.cl.Topic, part, end, next, ctx.Err())
		}
	}
}

// broadcastLocked wakes everyone waiting for a position; f.mu is held.
func (f *Follower) broadcastLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Follower) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.broadcastLocked()
	f.mu.Unlock()
}

// Run restores every partition and tails the changelog until ctx is done.
func (f *Follower) Run(ctx context.Context) error {
	err := f.run(ctx)
	if err != nil && ctx.Err() == nil {
		f.fail(err)
		return err
	}
	return nil
}

func (f *Follower) run(ctx context.Context) error {
	admin, err := kgo.NewClient(f.cl.ClientOpts...)
	if err != nil {
		return fmt.Errorf("state: kafka client: %w", err)
	}
	defer admin.Close()
	f.lists.admin, f.lists.client = kadm.NewClient(admin), admin
	ends, err := f.listStable(ctx)
	if err != nil {
		return err
	}
	cl := *f.cl
	cl.Admin = admin
	offsets := map[int32]int64{}
	for part := range ends {
		pr, err := cl.Restore(ctx, f.store, part, nil)
		if err != nil {
			return err
		}
		cp, _, err := f.store.Checkpoint(part)
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.cps[part] = cp
		f.mu.Unlock()
		offsets[part] = cp.Next
		f.o.Logger.Info("state restored", "topic", f.cl.Topic, "partition", part, "from", pr.From, "to", cp.Next, "records", pr.Records)
	}
	tail, err := kgo.NewClient(f.cl.ClientOpts...)
	if err != nil {
		return fmt.Errorf("state: tail of %s: %w", f.cl.Topic, err)
	}
	defer tail.Close()
	f.mu.Lock()
	f.ready = true
	f.broadcastLocked()
	f.mu.Unlock()
	// The key filter is filled in the background, so a large store does
	// not delay readiness; until it is armed, lookups read Pebble.
	fctx, cancel := context.WithCancel(ctx)
	filled := make(chan struct{})
	go func() {
		defer close(filled)
		if err := f.fillFilter(fctx, ends); err != nil && fctx.Err() == nil {
			f.o.Logger.Warn("building the key filter failed; lookups read the store", "topic", f.cl.Topic, "err", err)
		}
	}()
	defer func() { cancel(); <-filled }()
	return f.tail(ctx, tail, offsets)
}

// tail applies the changelog's committed records from offsets on, partition
// by partition, until ctx is done. kafkax.Follow, not a kgo consumer: it
// says where each partition's reading stands after every fetch, so the
// position moves past an aborted transaction or markers even when nothing
// follows them yet, which WaitFor's barrier needs (the records above may
// be the waiter's own open transaction).
func (f *Follower) tail(ctx context.Context, cl *kgo.Client, offsets map[int32]int64) error {
	every := max(f.o.Window/96, time.Second)
	lastExpire := time.Now()
	recs := map[int32][]*kgo.Record{}
	f.heard.Store(time.Now().UnixNano())
	return kafkax.Follow(ctx, cl, f.cl.Topic, offsets,
		func(r *kgo.Record) error {
			recs[r.Partition] = append(recs[r.Partition], r)
			return nil
		},
		func(part int32, next int64) error {
			f.heard.Store(time.Now().UnixNano())
			err := f.applyTail(part, recs[part], next)
			clear(recs[part])
			recs[part] = recs[part][:0]
			if err != nil {
				return err
			}
			if f.o.Window > 0 && time.Since(lastExpire) >= every {
				lastExpire = time.Now()
				return f.expire()
			}
			return nil
		})
}

// applyTail applies recs, part's committed records read up to next (its
// reading position), except those this instance applied when it committed
// them.
func (f *Follower) applyTail(part int32, recs []*kgo.Record, next int64) error {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.mu.Lock()
	cp := f.cps[part]
	if next <= cp.Next && len(recs) == 0 {
		f.mu.Unlock()
		return nil // an idle poll
	}
	own := f.own[part]
	puts := make([]Put, 0, len(recs))
	for _, r := range recs {
		if _, mine := own[r.Offset]; mine {
			delete(own, r.Offset)
			continue
		}
		if r.Offset < cp.Next {
			continue
		}
		ts := r.Timestamp.UnixMilli()
		if f.o.Window > 0 && ts <= max(cp.StreamTime, ts)-f.o.Window.Milliseconds() {
			continue
		}
		puts = append(puts, Put{Key: r.Key, Value: r.Value, TS: ts})
	}
	// Our own records are committed, so the reading hands each of them out
	// (and they leave own above); one still listed below next would only
	// be stale: drop it rather than keep it forever.
	for o := range own {
		if o < next {
			delete(own, o)
		}
	}
	f.mu.Unlock()
	cp.Next = max(cp.Next, next)
	for _, p := range puts {
		cp.StreamTime = max(cp.StreamTime, p.TS)
	}
	f.filterAdd(part, puts)
	// A batch of only our own records (already in the store) moves the
	// position in memory; the checkpoint on disk follows with the next
	// batch that writes, or within a second: a checkpoint behind only
	// replays more at the next start.
	if len(puts) > 0 || time.Since(f.saved[part]) >= time.Second {
		if err := f.store.Apply(part, puts, cp); err != nil {
			return err
		}
		f.saved[part] = time.Now()
	}
	f.mu.Lock()
	f.cps[part] = cp
	f.broadcastLocked()
	f.mu.Unlock()
	return nil
}

// expire deletes entries that left the window, per partition.
func (f *Follower) expire() error {
	f.mu.Lock()
	cps := make(map[int32]Checkpoint, len(f.cps))
	for p, cp := range f.cps {
		cps[p] = cp
	}
	f.mu.Unlock()
	for part, cp := range cps {
		cutoff := cp.StreamTime - f.o.Window.Milliseconds()
		for {
			n, err := f.store.Expire(part, cutoff, 10000)
			if err != nil {
				return err
			}
			if n < 10000 {
				break
			}
		}
		if f.filter != nil {
			f.filter.expired(part, cutoff)
		}
	}
	return nil
}

// filterAdd adds the keys puts write to the filter, before they are
// written: a lookup never finds a key in the store that the filter denies.
func (f *Follower) filterAdd(part int32, puts []Put) {
	if f.filter != nil {
		f.filter.addPuts(part, puts)
	}
}

// fillFilter adds every key the store holds for parts (restored, or kept
// from a previous run) and arms the filter. It may run while the tail
// applies records: every write adds its key to the filter before it reaches
// the store, so a key is either in the snapshot Range reads or added by its
// write (an expired key added back is only a false positive).
func (f *Follower) fillFilter(ctx context.Context, parts map[int32]int64) error {
	if f.filter == nil {
		return nil
	}
	for part := range parts {
		err := f.store.Range(part, nil, func(key []byte, e Entry) error {
			f.filter.add(part, key, e.TS)
			return ctx.Err()
		})
		if err != nil {
			return fmt.Errorf("state: loading the key filter of %s[%d]: %w", f.cl.Topic, part, err)
		}
	}
	f.filter.arm()
	return nil
}

func (f *Follower) listStable(ctx context.Context) (map[int32]int64, error) {
	if f.lists.admin == nil {
		return nil, fmt.Errorf("state: %s is not followed yet (Run)", f.cl.Topic)
	}
	f.mu.Lock()
	parts := make([]int32, 0, len(f.cps))
	for p := range f.cps {
		parts = append(parts, p)
	}
	f.mu.Unlock()
	if len(parts) > 0 {
		return f.listStableOf(ctx, parts)
	}
	ends, err := f.lists.admin.ListCommittedOffsets(ctx, f.cl.Topic)
	if err != nil {
		return nil, fmt.Errorf("state: listing stable offsets of %s: %w", f.cl.Topic, err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("state: stable offsets of %s (does the topic exist? run `pcistream topology apply`): %w", f.cl.Topic, err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// listings holds the follower's admin clients and the health of its last
// end-offset listing: the barrier (ListKeyEnds) cannot work while listings
// fail.
type listings struct {
	admin  *kadm.Client
	client *kgo.Client

	mu      sync.Mutex
	last    error
	probing bool
}

func (l *listings) setLast(err error) {
	l.mu.Lock()
	l.last = err
	l.mu.Unlock()
}

func (l *listings) lastErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last != nil {
		return fmt.Errorf("cannot list the end offsets of the state topic: %w", l.last)
	}
	return nil
}

// probe runs list once in the background, unless a probe is running, and
// records its outcome.
func (l *listings) probe(list func(context.Context) (map[int32]int64, error)) {
	l.mu.Lock()
	if l.probing {
		l.mu.Unlock()
		return
	}
	l.probing = true
	l.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := list(ctx)
		cancel()
		l.mu.Lock()
		l.last, l.probing = err, false
		l.mu.Unlock()
	}()
}

// listEnds lists the high watermarks of every partition followed (the
// readiness probe).
func (f *Follower) listEnds(ctx context.Context) (map[int32]int64, error) {
	f.mu.Lock()
	parts := make([]int32, 0, len(f.cps))
	for p := range f.cps {
		parts = append(parts, p)
	}
	f.mu.Unlock()
	if len(parts) == 0 {
		return nil, fmt.Errorf("state: %s is not followed yet (Run)", f.cl.Topic)
	}
	return f.listEndsOf(ctx, parts)
}

// listEndsOf lists the high watermarks of parts (read_uncommitted ends).
func (f *Follower) listEndsOf(ctx context.Context, parts []int32) (map[int32]int64, error) {
	return f.listOffsetsOf(ctx, parts, 0)
}

// listStableOf lists the last stable offsets of parts.
func (f *Follower) listStableOf(ctx context.Context, parts []int32) (map[int32]int64, error) {
	return f.listOffsetsOf(ctx, parts, 1)
}

// listOffsetsOf lists the ends of parts at isolation (0 read_uncommitted:
// high watermarks, 1 read_committed: last stable offsets) with one
// ListOffsets request per leader (kgo shards it), without the metadata
// request kadm sends first: it runs for every catch-up.
func (f *Follower) listOffsetsOf(ctx context.Context, parts []int32, isolation int8) (map[int32]int64, error) {
	if f.lists.client == nil {
		return nil, fmt.Errorf("state: %s is not followed yet (Run)", f.cl.Topic)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = isolation
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = f.cl.Topic
	for _, p := range parts {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = -1 // the end
		t.Partitions = append(t.Partitions, rp)
	}
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, f.lists.client)
	if err != nil {
		return nil, fmt.Errorf("state: listing the end offsets of %s: %w", f.cl.Topic, err)
	}
	out := make(map[int32]int64, len(parts))
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return nil, fmt.Errorf("state: end offset of %s[%d]: %w", f.cl.Topic, rp.Partition, err)
			}
			out[rp.Partition] = rp.Offset
		}
	}
	for _, p := range parts {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("state: no end offset listed for %s[%d]", f.cl.Topic, p)
		}
	}
	return out, nil
}
