package state

import (
	"hash/maphash"
	"sync"
)

// followerFilter proves keys absent from a Follower's store without reading
// Pebble: the gateway looks up every new Idempotency-Key, and a Pebble point
// lookup of a missing key (memtable skiplist seeks, level iterators) costs
// several times a few Bloom probes.
//
// It is exact in the direction that matters: mayContain is false only for a
// key that no live entry of the store holds, because every key the follower
// writes is added before the write, and the keys the store held are added
// by a snapshot scan that starts once the follower is ready (until it ends
// the filter is not armed and answers "maybe"). False positives only cost the
// Pebble lookup the filter would have saved.
//
// Memory is bounded: keys are kept per partition in Bloom filters bucketed
// by entry timestamp (eight buckets per window), a bucket is dropped once
// the store's expiry deleted every entry it could hold, and a bucket that
// would grow past the memory budget stops taking keys and answers "maybe"
// until it is dropped: past its budget the filter degrades to the plain
// Pebble lookup, never to a wrong answer.
//
// One edge: an entry written with a timestamp already at or before the
// expiry cutoff (stream time minus the window, so only with writers' clocks
// a whole window apart) may be denied after its bucket was dropped and
// before the store's next expiry deletes it, which is the answer the store
// itself gives after that expiry.
type followerFilter struct {
	seed     maphash.Seed
	window   int64 // ms
	bucketMS int64

	mu     sync.RWMutex
	armed  bool
	budget bloomBudget                      // all partitions and buckets
	parts  map[int32]map[int64]*bloomFilter // partition -> bucket index -> filter
}

// followerBuckets is how many timestamp buckets a window spans.
const followerBuckets = 8

func newFollowerFilter(windowMS, budget int64) *followerFilter {
	return &followerFilter{seed: maphash.MakeSeed(), window: windowMS, bucketMS: max(windowMS/followerBuckets, 1),
		budget: bloomBudget{limit: budget}, parts: map[int32]map[int64]*bloomFilter{}}
}

// bucketOf is the bucket index of a timestamp (floor division).
func (f *followerFilter) bucketOf(ts int64) int64 {
	b := ts / f.bucketMS
	if ts < 0 && ts%f.bucketMS != 0 {
		b--
	}
	return b
}

// add records that part holds key with timestamp ts (before it is written).
func (f *followerFilter) add(part int32, key []byte, ts int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addLocked(part, key, ts)
}

// addPuts adds the keys puts write (deletions add nothing), under one lock.
func (f *followerFilter) addPuts(part int32, puts []Put) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range puts {
		if p.Value != nil {
			f.addLocked(part, p.Key, p.TS)
		}
	}
}

func (f *followerFilter) addLocked(part int32, key []byte, ts int64) {
	buckets := f.parts[part]
	if buckets == nil {
		buckets = map[int64]*bloomFilter{}
		f.parts[part] = buckets
	}
	idx := f.bucketOf(ts)
	b := buckets[idx]
	if b == nil {
		b = &bloomFilter{}
		buckets[idx] = b
	}
	b.add(maphash.Bytes(f.seed, key), &f.budget) // over budget: the bucket answers "maybe" until dropped
}

// mayContain is false only when no entry of part for key with a timestamp
// after nowMS - window was added.
func (f *followerFilter) mayContain(part int32, key []byte, nowMS int64) bool {
	h := maphash.Bytes(f.seed, key)
	f.mu.RLock()
	defer f.mu.RUnlock()
	if !f.armed {
		return true
	}
	for idx, b := range f.parts[part] {
		if (idx+1)*f.bucketMS-1 <= nowMS-f.window {
			continue // every entry it may hold is out of the window at now
		}
		if b.mayHave(h) {
			return true
		}
	}
	return false
}

// isArmed reports whether the filter answers (tests wait for it).
func (f *followerFilter) isArmed() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.armed
}

// arm makes the filter answer: every key of the store has been added.
func (f *followerFilter) arm() {
	f.mu.Lock()
	f.armed = true
	f.mu.Unlock()
}

// expired drops the buckets of part whose entries all have a timestamp at
// or before cutoff: the store's expiry has just deleted every such entry.
func (f *followerFilter) expired(part int32, cutoff int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for idx, b := range f.parts[part] {
		if (idx+1)*f.bucketMS-1 <= cutoff {
			b.release(&f.budget)
			delete(f.parts[part], idx)
		}
	}
}
