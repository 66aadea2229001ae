package state

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Status is a partition's state in a Table.
type Status int

const (
	// NotOwned: the partition is not assigned to this worker.
	NotOwned Status = iota
	// Restoring: the changelog is being replayed into the store.
	Restoring
	// Restored: the store is up to date; the partition may be processed.
	Restored
	// Failed: the restore failed; Err says why. The partition must not be
	// processed (its dedup state is incomplete): fail closed.
	Failed
)

func (s Status) String() string {
	return [...]string{"not_owned", "restoring", "restored", "failed"}[s]
}

// PartitionStatus is what readiness probes and operators see per partition.
type PartitionStatus struct {
	Status   Status
	Progress Progress
	Err      error
}

// ErrNotRestored is returned by Table.Get for a partition whose state is not
// restored (yet): processing it could emit duplicates.
var ErrNotRestored = errors.New("state partition not restored")

// TableOpts configures a Table.
type TableOpts struct {
	// Window: entries older than this, measured in stream time (the newest
	// entry timestamp of the partition), are dead: Get ignores them, expiry
	// deletes them and restores do not load them. 0 keeps entries forever.
	Window time.Duration
	// Logger for restore progress (default slog.Default()).
	Logger *slog.Logger
	// Metrics, when set, receives restore progress.
	Metrics *Metrics
	// ExpireEvery is how much stream time passes between expiry sweeps of a
	// partition (default Window/96, at least one second).
	ExpireEvery time.Duration
	// KeepRevoked is how long the data of a revoked partition stays on
	// disk for a warm re-assignment (then only the changelog tail is
	// replayed); after that it is wiped, so a worker's disk holds only
	// what it owns plus a bounded grace. Default DefaultKeepRevoked;
	// negative wipes at once.
	KeepRevoked time.Duration
	// FilterBytes bounds the memory of the key filters that answer most
	// lookups of absent keys without reading the store (filter.go):
	// default DefaultFilterBytes, negative for none. A partition whose
	// filter would not fit is read from the store.
	FilterBytes int64
}

// DefaultKeepRevoked is TableOpts.KeepRevoked's default: long enough for
// a rolling restart or a rebalance storm to hand partitions back.
const DefaultKeepRevoked = 10 * time.Minute

// Table is a windowed keyed table over a Store and its Changelog, for an
// exactly-once consume-transform-produce processor:
//
//   - Assign starts restoring partitions at once, in the background; Revoke
//     cancels the restores of partitions that went away.
//   - Get reads the open transaction's writes, then the store.
//   - Put returns the changelog record to produce in the open transaction
//     and remembers the write as pending.
//   - Ended(true) applies the pending writes with their changelog offsets as
//     the new checkpoint; Ended(false) drops them and re-restores the tail of
//     the partitions they touched (the outcome of a failed commit is
//     unknown: the changelog is the truth).
//
// Methods are safe for concurrent use; Get, Put and Ended are meant to be
// called from the processor's goroutine.
type Table struct {
	store *Store
	cl    *Changelog
	o     TableOpts

	mu      sync.Mutex
	parts   map[int32]*partition
	pending map[int32]*pendingPart
	revoked map[int32]*time.Timer // wipes scheduled for revoked partitions
	closed  bool
	wg      sync.WaitGroup

	seed         maphash.Seed // of the key filters' hashes
	filterBudget bloomBudget  // memory of all key filters (limit TableOpts.FilterBytes)
}

type partition struct {
	PartitionStatus
	streamTime int64 // of committed entries
	lastExpire int64
	ctx        context.Context // ends when the partition is replaced, revoked or the table closed
	cancel     context.CancelFunc
	done       chan struct{}
	onRestored func(int32)
	settled    bool // no committing transaction is missing (settle.go)
	// filter, when complete, holds every key of the partition's store;
	// building is being scanned (filter.go).
	filter, building *tableFilter
}

type pendingPart struct {
	entries    map[string]Entry
	recs       []*kgo.Record
	streamTime int64
}

// NewTable returns a table over store restored from cl. The table owns
// the store's partitions: those it is not assigned within
// TableOpts.KeepRevoked are wiped.
func NewTable(store *Store, cl *Changelog, o TableOpts) *Table {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ExpireEvery <= 0 {
		o.ExpireEvery = max(o.Window/96, time.Second)
	}
	if o.KeepRevoked == 0 {
		o.KeepRevoked = DefaultKeepRevoked
	}
	if o.FilterBytes == 0 {
		o.FilterBytes = DefaultFilterBytes
	}
	t := &Table{store: store, cl: cl, o: o, parts: map[int32]*partition{}, pending: map[int32]*pendingPart{},
		revoked: map[int32]*time.Timer{}, seed: maphash.MakeSeed(), filterBudget: bloomBudget{limit: o.FilterBytes}}
	// Partitions a previous process held count as revoked from now: kept
	// for a warm assignment, wiped if none comes within KeepRevoked.
	if held, err := store.held(); err != nil {
		o.Logger.Warn("listing the partitions in the state store failed; those not assigned again stay on disk", "err", err)
	} else if o.KeepRevoked > 0 {
		for _, p := range held {
			t.revoked[p] = time.AfterFunc(o.KeepRevoked, func() { t.wipeRevoked(p) })
		}
	}
	if o.Window > 0 {
		w := o.Window.Milliseconds()
		user := cl.Filter
		cl.Filter = func(r *kgo.Record, streamTime int64) bool {
			if r.Timestamp.UnixMilli() <= streamTime-w {
				return false // already outside the window: never loaded
			}
			return user == nil || user(r, streamTime)
		}
	}
	return t
}

// Store returns the table's store.
func (t *Table) Store() *Store { return t.store }

// Topic is the changelog topic.
func (t *Table) Topic() string { return t.cl.Topic }

// Assign starts restoring parts in the background. pause (may be nil) is
// called, under the table's lock, with the partitions that are not restored
// yet, e.g. to pause fetching them; resume (may be nil) is called from the
// restore goroutine once a partition is ready. Holding the lock across pause
// means a restore cannot finish (and resume) before its partition was
// paused. A partition already restored or restoring is not restarted, but
// its resume callback is replaced (a new client may have been assigned it).
func (t *Table) Assign(parts []int32, pause func([]int32), resume func(part int32)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var paused []int32
	for _, p := range parts {
		ps, ok := t.parts[p]
		switch {
		case ok && ps.Status == Restored:
			continue
		case ok && ps.Status == Restoring:
			ps.onRestored = resume
		default:
			t.startLocked(p, resume)
		}
		paused = append(paused, p)
	}
	if pause != nil && len(paused) > 0 {
		pause(paused)
	}
}

func (t *Table) startLocked(part int32, onRestored func(int32)) {
	if tm, ok := t.revoked[part]; ok { // back before its wipe: warm
		tm.Stop()
		delete(t.revoked, part)
	}
	if old := t.parts[part]; old != nil {
		old.cancel()
		t.dropFiltersLocked(old)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ps := &partition{ctx: ctx, cancel: cancel, done: make(chan struct{}), onRestored: onRestored}
	ps.Status = Restoring
	t.parts[part] = ps
	t.o.Metrics.status(t.cl.Topic, part, Restoring)
	t.wg.Add(1)
	go t.restore(ctx, part, ps)
}

func (t *Table) restore(ctx context.Context, part int32, ps *partition) {
	defer t.wg.Done()
	defer close(ps.done)
	var counted int64
	report := func(pr Progress) {
		t.mu.Lock()
		ps.Progress = pr
		t.mu.Unlock()
		t.o.Metrics.progress(t.cl.Topic, pr, pr.Records-counted)
		counted = pr.Records
		rate := float64(pr.Records) / max(time.Since(pr.Started).Seconds(), 1e-9)
		t.o.Logger.Info("restoring state", "topic", t.cl.Topic, "partition", part,
			"offset", pr.Next, "end", pr.End, "remaining", pr.Remaining(), "records_per_s", int64(rate))
	}
	pr, err := t.cl.Restore(ctx, t.store, part, report)
	var cp Checkpoint
	if err == nil {
		cp, _, err = t.store.Checkpoint(part)
	}
	t.mu.Lock()
	ps.Progress = pr
	if t.parts[part] != ps { // revoked meanwhile
		t.mu.Unlock()
		return
	}
	if err != nil {
		ps.Status, ps.Err = Failed, err
		t.mu.Unlock()
		t.o.Metrics.status(t.cl.Topic, part, Failed)
		t.o.Logger.Error("state restore failed: the partition is not processed", "topic", t.cl.Topic, "partition", part, "err", err)
		return
	}
	ps.Status, ps.streamTime = Restored, cp.StreamTime
	cb := ps.onRestored
	t.buildFilterLocked(part, ps)
	t.mu.Unlock()
	t.o.Metrics.progress(t.cl.Topic, pr, pr.Records-counted)
	t.o.Metrics.status(t.cl.Topic, part, Restored)
	t.o.Logger.Info("state restored", "topic", t.cl.Topic, "partition", part, "from", pr.From, "to", pr.Next,
		"records", pr.Records, "took", time.Since(pr.Started).Round(time.Millisecond))
	if cb != nil {
		cb(part)
	}
}

// Revoke cancels the restores of parts (and waits for them to stop) and
// forgets their pending writes. Their data stays on disk for
// TableOpts.KeepRevoked, so an assignment within that time only replays
// the tail; then it is wiped.
func (t *Table) Revoke(parts []int32) {
	t.mu.Lock()
	var wait []chan struct{}
	var gone []int32
	for _, p := range parts {
		if ps, ok := t.parts[p]; ok {
			ps.cancel()
			t.dropFiltersLocked(ps)
			wait = append(wait, ps.done)
			delete(t.parts, p)
			gone = append(gone, p)
			t.o.Metrics.status(t.cl.Topic, p, NotOwned)
		}
		delete(t.pending, p)
	}
	t.mu.Unlock()
	for _, d := range wait {
		<-d
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range gone {
		if _, back := t.parts[p]; back || t.closed {
			continue
		}
		if t.o.KeepRevoked < 0 {
			t.wipeLocked(p)
			continue
		}
		if tm, ok := t.revoked[p]; ok {
			tm.Stop()
		}
		t.revoked[p] = time.AfterFunc(t.o.KeepRevoked, func() { t.wipeRevoked(p) })
	}
}

// wipeRevoked wipes part unless it was assigned again meanwhile.
func (t *Table) wipeRevoked(part int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, owned := t.parts[part]; owned || t.closed || t.revoked[part] == nil {
		return
	}
	delete(t.revoked, part)
	t.wipeLocked(part)
}

// wipeLocked deletes a partition this worker no longer owns. Under the
// lock, so an assignment cannot start restoring it halfway through.
func (t *Table) wipeLocked(part int32) {
	if err := t.store.Wipe(part); err != nil {
		t.o.Logger.Warn("wiping the state of a revoked partition failed; it is retried at its next revocation", "topic", t.cl.Topic, "partition", part, "err", err)
		return
	}
	t.o.Logger.Info("state of a revoked partition wiped", "topic", t.cl.Topic, "partition", part, "kept_for", t.o.KeepRevoked)
}

// Revoked returns the partitions whose data is kept on disk after their
// revocation, waiting for a re-assignment or their wipe.
func (t *Table) Revoked() []int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]int32, 0, len(t.revoked))
	for p := range t.revoked {
		out = append(out, p)
	}
	return out
}

// Status returns the status of every owned partition.
func (t *Table) Status() map[int32]PartitionStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[int32]PartitionStatus, len(t.parts))
	for p, ps := range t.parts {
		out[p] = ps.PartitionStatus
	}
	return out
}

// Ready is nil when every owned partition is restored, and says which are
// not otherwise: wire it into the readiness probe.
func (t *Table) Ready() error {
	var errs []error
	for p, s := range t.Status() {
		switch s.Status {
		case Restoring:
			errs = append(errs, fmt.Errorf("%s[%d] restoring (%d offsets left)", t.cl.Topic, p, s.Progress.Remaining()))
		case Failed:
			errs = append(errs, fmt.Errorf("%s[%d] restore failed: %w", t.cl.Topic, p, s.Err))
		case Restored:
			if s.Err != nil { // settling (settle.go) keeps failing
				errs = append(errs, fmt.Errorf("%s[%d] held back before its first record: %w", t.cl.Topic, p, s.Err))
			}
		}
	}
	return errors.Join(errs...)
}

// WaitRestored blocks until part is restored, its restore failed, it is
// revoked, or ctx is done. The first call after a restore also makes sure
// no transaction committing into part is missing from it (settle.go), so
// call it once a record of part was fetched, before processing it: the
// group's offsets of part are then stable.
func (t *Table) WaitRestored(ctx context.Context, part int32) error {
	for {
		ps, settled, err := t.waitRestore(ctx, part)
		if err != nil || settled {
			return err
		}
		again, err := t.settle(ctx, part, ps)
		if err != nil {
			return fmt.Errorf("%w: %s[%d]: %w", ErrNotRestored, t.cl.Topic, part, err)
		}
		if !again {
			return nil
		}
	}
}

// waitRestore waits for part's current restore and returns its partition
// and whether it is settled.
func (t *Table) waitRestore(ctx context.Context, part int32) (*partition, bool, error) {
	t.mu.Lock()
	ps, ok := t.parts[part]
	t.mu.Unlock()
	if !ok {
		return nil, false, fmt.Errorf("%w: %s[%d] is not assigned to this worker", ErrNotRestored, t.cl.Topic, part)
	}
	select {
	case <-ps.done:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.parts[part] != ps {
		return nil, false, fmt.Errorf("%w: %s[%d] was revoked", ErrNotRestored, t.cl.Topic, part)
	}
	if ps.Status != Restored {
		return nil, false, fmt.Errorf("%w: %s[%d]: %v", ErrNotRestored, t.cl.Topic, part, ps.Err)
	}
	return ps, ps.settled, nil
}

// live reports whether an entry at ts is inside the window at streamTime.
func (t *Table) live(ts, streamTime int64) bool {
	return t.o.Window <= 0 || ts > streamTime-t.o.Window.Milliseconds()
}

// Get returns the live entry for key in part: the open transaction's write
// if any, else the store's. Entries outside the window (in stream time,
// including the open transaction's writes) are not returned, whether or not
// expiry has deleted them yet, so a swept store and a fresh restore decide
// alike.
func (t *Table) Get(part int32, key []byte) (Entry, bool, error) {
	h := t.keyHash(key)
	t.mu.Lock()
	ps, ok := t.parts[part]
	if !ok || ps.Status != Restored {
		t.mu.Unlock()
		return Entry{}, false, fmt.Errorf("%w: %s[%d]", ErrNotRestored, t.cl.Topic, part)
	}
	st := ps.streamTime
	if pp := t.pending[part]; pp != nil {
		st = max(st, pp.streamTime)
		if e, ok := pp.entries[string(key)]; ok {
			t.mu.Unlock()
			return e, t.live(e.TS, st), nil
		}
	}
	if f := ps.filter; f != nil && f.complete && !f.mayHave(h) {
		t.mu.Unlock()
		return Entry{}, false, nil // proven absent from the store (filter.go)
	}
	t.mu.Unlock()
	e, found, err := t.store.Get(part, key)
	if err != nil || !found {
		return Entry{}, false, err
	}
	return e, t.live(e.TS, st), nil
}

// StreamTime is part's stream time including the open transaction.
func (t *Table) StreamTime(part int32) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := int64(0)
	if ps := t.parts[part]; ps != nil {
		st = ps.streamTime
	}
	if pp := t.pending[part]; pp != nil {
		st = max(st, pp.streamTime)
	}
	return st
}

// Put records a write in the open transaction and returns the changelog
// record to produce in it (partition set explicitly: the changelog is
// co-partitioned with the input of the processor). The record must be
// produced in the transaction Ended reports on, and not reused.
func (t *Table) Put(part int32, key, value []byte, ts int64) *kgo.Record {
	r := &kgo.Record{Topic: t.cl.Topic, Partition: part, Key: key, Value: value, Timestamp: time.UnixMilli(ts), Offset: -1}
	h := t.keyHash(key)
	t.mu.Lock()
	defer t.mu.Unlock()
	if ps := t.parts[part]; ps != nil {
		t.filterAddLocked(part, ps, h)
	}
	pp := t.pending[part]
	if pp == nil {
		pp = &pendingPart{entries: map[string]Entry{}}
		t.pending[part] = pp
	}
	pp.entries[string(key)] = Entry{TS: ts, Value: value}
	pp.recs = append(pp.recs, r)
	pp.streamTime = max(pp.streamTime, ts)
	return r
}

// Ended applies (committed) or drops the open transaction's writes. After a
// commit every produced changelog record has its offset, and the largest
// one plus one becomes the partition's checkpoint, in the same batch. After
// an abort or an unknown outcome the partitions written to are restored
// again from their checkpoint (only the tail, quick): if the commit did
// happen, the changelog has the writes.
func (t *Table) Ended(committed bool) error {
	t.mu.Lock()
	pending := t.pending
	t.pending = map[int32]*pendingPart{}
	t.mu.Unlock()
	var errs []error
	for part, pp := range pending {
		t.mu.Lock()
		ps, owned := t.parts[part]
		t.mu.Unlock()
		if !owned {
			continue // revoked: its next owner restores it
		}
		if !committed {
			t.mu.Lock()
			if t.parts[part] == ps && ps.Status == Restored {
				t.startLocked(part, ps.onRestored)
			}
			t.mu.Unlock()
			continue
		}
		if err := t.apply(part, ps, pp); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (t *Table) apply(part int32, ps *partition, pp *pendingPart) error {
	next := int64(-1)
	puts := make([]Put, 0, len(pp.recs))
	for _, r := range pp.recs {
		next = max(next, r.Offset+1)
		puts = append(puts, Put{Key: r.Key, Value: r.Value, TS: r.Timestamp.UnixMilli()})
	}
	cp, _, err := t.store.Checkpoint(part)
	if err != nil {
		return err
	}
	if next <= 0 {
		return fmt.Errorf("state: %s[%d]: committed changelog records have no offsets (were they produced?)", t.cl.Topic, part)
	}
	cp.Next = max(cp.Next, next)
	if err := t.store.Apply(part, puts, cp); err != nil {
		// The changelog has the data; a restore will bring it in.
		t.mu.Lock()
		if t.parts[part] == ps {
			t.startLocked(part, ps.onRestored)
		}
		t.mu.Unlock()
		return err
	}
	t.mu.Lock()
	ps.streamTime = max(ps.streamTime, pp.streamTime)
	st, due := ps.streamTime, t.o.Window > 0 && ps.streamTime-ps.lastExpire >= t.o.ExpireEvery.Milliseconds()
	if due {
		ps.lastExpire = st
	}
	t.mu.Unlock()
	if due {
		return t.expire(part, st)
	}
	return nil
}

// expire deletes part's entries that left the window, in bounded steps.
func (t *Table) expire(part int32, streamTime int64) error {
	cutoff := streamTime - t.o.Window.Milliseconds()
	for {
		n, err := t.store.Expire(part, cutoff, 10000)
		if err != nil {
			return err
		}
		if n < 10000 {
			return nil
		}
	}
}

// Close cancels running restores and waits for them. It does not close the
// store.
func (t *Table) Close() {
	t.mu.Lock()
	for _, ps := range t.parts {
		ps.cancel()
	}
	for _, tm := range t.revoked {
		tm.Stop() // a restart starts warm; whoever owns them next decides
	}
	t.closed = true
	t.mu.Unlock()
	t.wg.Wait()
}
