package state

// A Table keeps, per restored partition, a Bloom filter of every key in the
// store: most lookups are for keys that are not there (a new idempotency
// key), and for those Pebble has to search every memtable's skiplist (its
// bloom filters only cover sstables), which cost about a tenth of the
// tokenizer's CPU per event. A Bloom filter has no false negatives, so
// "not in the filter" proves "not in the store" as long as every key of
// the partition's store is in the filter; any "maybe" goes to the store.
//
// How that invariant holds (all under Table.mu):
//   - A filter belongs to one restored partition (one *partition value):
//     a restore, a re-restore after an abort and a revocation replace or
//     drop that value, and its filter with it.
//   - Once a partition is restored, a builder is registered first, then a
//     background scan reads the keys of a store snapshot taken after that.
//     Every key Put from registration on goes to the builder too, and the
//     keys pending at registration are added at once: a key applied after
//     the snapshot was pending at registration or Put after it.
//   - Live writes reach the store only through Put then Ended (apply);
//     Put adds the key to the filter and the builder. Expiry only deletes
//     (a deleted key left in the filter is a false positive, not an error).
//   - The filter is used only once its scan is complete; until then, and
//     whenever it is over its memory budget, lookups go to the store.
//
// Deleted keys stay in the filter, so it is rebuilt (same protocol, the old
// one serving meanwhile) once it holds twice the keys it was built with.

import (
	"context"
	"hash/maphash"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// DefaultFilterBytes is TableOpts.FilterBytes's default: enough for about
// 100 million keys per worker at about 1% false positives.
const DefaultFilterBytes = 128 << 20

// tableFilter is a restored partition's key filter in a Table.
type tableFilter struct {
	bloomFilter
	built    int  // keys when its scan completed
	complete bool // its scan is done: "not here" proves "not in the store"
}

func (t *Table) keyHash(key []byte) uint64 { return maphash.Bytes(t.seed, key) }

// filterAddLocked adds the key hashed h to part's filter and builder.
func (t *Table) filterAddLocked(part int32, ps *partition, h uint64) {
	for _, f := range []*tableFilter{ps.filter, ps.building} {
		if f != nil {
			f.add(h, &t.filterBudget)
		}
	}
	if f := ps.filter; f != nil && f.over {
		ps.filter = nil
	}
	if f := ps.filter; f != nil && f.complete && ps.building == nil && f.keys >= 2*max(f.built, bloomFirstKeys) {
		t.buildFilterLocked(part, ps) // deleted keys accumulate: rebuild
	}
}

// buildFilterLocked registers a builder for ps and scans its keys in the
// background (see the comment at the top of this file).
func (t *Table) buildFilterLocked(part int32, ps *partition) {
	if t.o.FilterBytes < 0 || t.closed {
		return
	}
	b := &tableFilter{}
	ps.building = b
	if pp := t.pending[part]; pp != nil {
		for k := range pp.entries {
			b.add(t.keyHash([]byte(k)), &t.filterBudget)
		}
	}
	t.wg.Add(1)
	go t.scanFilter(part, ps, b)
}

func (t *Table) scanFilter(part int32, ps *partition, b *tableFilter) {
	defer t.wg.Done()
	start := time.Now()
	done, err := t.scanKeys(ps.ctx, part, func(hs []uint64) bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.parts[part] != ps || ps.building != b || b.over {
			return false
		}
		for _, h := range hs {
			b.add(h, &t.filterBudget)
		}
		return !b.over
	})
	t.mu.Lock()
	defer t.mu.Unlock()
	if ps.building != b {
		b.release(&t.filterBudget) // superseded
		return
	}
	ps.building = nil
	if t.parts[part] != ps || !done || b.over {
		b.release(&t.filterBudget)
		if b.over && ps.filter != nil {
			// A rebuild that does not fit: stop using (and rebuilding) the
			// old one too, until the partition is restored again.
			ps.filter.release(&t.filterBudget)
			ps.filter = nil
		}
		if err != nil && ps.ctx.Err() == nil {
			t.o.Logger.Warn("building the key filter failed; lookups read the store", "topic", t.cl.Topic, "partition", part, "err", err)
		} else if b.over {
			t.o.Logger.Info("key filter over its memory budget; lookups read the store", "topic", t.cl.Topic, "partition", part, "budget_bytes", t.o.FilterBytes)
		}
		return
	}
	if old := ps.filter; old != nil {
		old.release(&t.filterBudget)
	}
	b.complete, b.built = true, b.keys
	ps.filter = b
	t.o.Logger.Info("key filter built", "topic", t.cl.Topic, "partition", part, "keys", b.keys, "bytes", b.bytes,
		"took", time.Since(start).Round(time.Millisecond))
}

// dropFiltersLocked releases ps's filters (its partition is replaced or
// gone); a scan still running for it stops at its next chunk.
func (t *Table) dropFiltersLocked(ps *partition) {
	for _, f := range []*tableFilter{ps.filter, ps.building} {
		if f != nil {
			f.release(&t.filterBudget)
		}
	}
	ps.filter, ps.building = nil, nil
}

// scanKeys calls add with the hashes of part's keys, in chunks, from a
// store snapshot taken now. done is true when every key was added: not when
// ctx ended or add returned false.
func (t *Table) scanKeys(ctx context.Context, part int32, add func([]uint64) bool) (done bool, err error) {
	p := prefix(kindData, part)
	it, err := t.store.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return false, err
	}
	defer func() {
		if cerr := it.Close(); err == nil {
			err = cerr
		}
	}()
	hs := make([]uint64, 0, 4096)
	for ok := it.First(); ok; ok = it.Next() {
		hs = append(hs, t.keyHash(it.Key()[prefixLen:]))
		if len(hs) == cap(hs) {
			if ctx.Err() != nil || !add(hs) {
				return false, nil
			}
			hs = hs[:0]
		}
	}
	if err := it.Error(); err != nil {
		return false, err
	}
	if ctx.Err() != nil || (len(hs) > 0 && !add(hs)) {
		return false, nil
	}
	return true, nil
}
