package state

import (
	"hash/maphash"
	"sync"
)

// keyFilter proves keys absent from a Follower's store without reading
// Pebble: the gateway looks up every new Idempotency-Key, and a Pebble point
// lookup of a missing key (memtable skiplist seeks, level iterators) costs
// several times a few Bloom probes.
//
// It is exact in the direction that matters: mayContain is false only for a
// key that no live entry of the store holds, because every key the follower
// writes is added before the write, and the keys already in the store when
// the follower became ready are added by a scan first (until then the
// filter is not armed and answers "maybe"). False positives only cost the
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
type keyFilter struct {
	seed     maphash.Seed
	window   int64 // ms
	bucketMS int64
	budget   int64 // bytes, all partitions and buckets

	mu    sync.RWMutex
	armed bool
	used  int64
	parts map[int32]map[int64]*bloomBucket // partition -> bucket index -> filter
}

// bloomBucket is a scalable Bloom filter: layers of doubling capacity.
type bloomBucket struct {
	layers    []*bloomLayer
	saturated bool
}

type bloomLayer struct {
	bits []uint64
	n    int // keys added
	cap  int // keys it takes at about 1% false positives
}

const (
	bloomBitsPerKey = 10
	bloomProbes     = 7
	// bloomFirstKeys is the capacity of a bucket's first layer (80 KiB).
	bloomFirstKeys = 64 << 10
	filterBuckets  = 8
)

func newKeyFilter(windowMS, budget int64) *keyFilter {
	return &keyFilter{seed: maphash.MakeSeed(), window: windowMS, bucketMS: max(windowMS/filterBuckets, 1),
		budget: budget, parts: map[int32]map[int64]*bloomBucket{}}
}

// bucketOf is the bucket index of a timestamp (floor division).
func (f *keyFilter) bucketOf(ts int64) int64 {
	b := ts / f.bucketMS
	if ts < 0 && ts%f.bucketMS != 0 {
		b--
	}
	return b
}

// add records that part holds key with timestamp ts (before it is written).
func (f *keyFilter) add(part int32, key []byte, ts int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addLocked(part, key, ts)
}

// addPuts adds the keys puts write (deletions add nothing), under one lock.
func (f *keyFilter) addPuts(part int32, puts []Put) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range puts {
		if p.Value != nil {
			f.addLocked(part, p.Key, p.TS)
		}
	}
}

func (f *keyFilter) addLocked(part int32, key []byte, ts int64) {
	h := maphash.Bytes(f.seed, key)
	buckets := f.parts[part]
	if buckets == nil {
		buckets = map[int64]*bloomBucket{}
		f.parts[part] = buckets
	}
	idx := f.bucketOf(ts)
	b := buckets[idx]
	if b == nil {
		b = &bloomBucket{}
		buckets[idx] = b
	}
	if b.saturated {
		return
	}
	var l *bloomLayer
	if n := len(b.layers); n > 0 && b.layers[n-1].n < b.layers[n-1].cap {
		l = b.layers[n-1]
	} else {
		keys := bloomFirstKeys << len(b.layers)
		words := keys * bloomBitsPerKey / 64
		if f.used+int64(words)*8 > f.budget {
			// Over budget: this bucket answers "maybe" from now on.
			b.saturated = true
			for _, old := range b.layers {
				f.used -= int64(len(old.bits)) * 8
			}
			b.layers = nil
			return
		}
		l = &bloomLayer{bits: make([]uint64, words), cap: keys}
		f.used += int64(words) * 8
		b.layers = append(b.layers, l)
	}
	l.set(h)
	l.n++
}

// mayContain is false only when no entry of part for key with a timestamp
// after nowMS - window was added.
func (f *keyFilter) mayContain(part int32, key []byte, nowMS int64) bool {
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
		if b.saturated {
			return true
		}
		for _, l := range b.layers {
			if l.has(h) {
				return true
			}
		}
	}
	return false
}

// arm makes the filter answer: every key of the store has been added.
func (f *keyFilter) arm() {
	f.mu.Lock()
	f.armed = true
	f.mu.Unlock()
}

// expired drops the buckets of part whose entries all have a timestamp at
// or before cutoff: the store's expiry has just deleted every such entry.
func (f *keyFilter) expired(part int32, cutoff int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for idx, b := range f.parts[part] {
		if (idx+1)*f.bucketMS-1 <= cutoff {
			for _, l := range b.layers {
				f.used -= int64(len(l.bits)) * 8
			}
			delete(f.parts[part], idx)
		}
	}
}

func (l *bloomLayer) set(h uint64) {
	h1, h2 := uint32(h), uint32(h>>32)|1
	m := uint32(len(l.bits) * 64)
	for i := uint32(0); i < bloomProbes; i++ {
		bit := (h1 + i*h2) % m
		l.bits[bit/64] |= 1 << (bit % 64)
	}
}

func (l *bloomLayer) has(h uint64) bool {
	h1, h2 := uint32(h), uint32(h>>32)|1
	m := uint32(len(l.bits) * 64)
	for i := uint32(0); i < bloomProbes; i++ {
		bit := (h1 + i*h2) % m
		if l.bits[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}
