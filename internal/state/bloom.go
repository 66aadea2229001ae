package state

// bloomFilter is a growing Bloom filter of key hashes (maphash of the user
// key): layers of doubling capacity, each at about 1% false positives; a
// hash goes into the last layer and may be present when any layer says so.
// The Table's and the Follower's key filters are built from it: both only
// need "this key was never added" to be exact.
//
// Its memory comes from a bloomBudget shared by all the filters of a
// Table or a Follower. A filter that would grow past the budget frees what
// it holds and is over: from then on it answers "maybe" for every key, so a
// filter past its budget degrades to reading the store, never to a wrong
// answer.
type bloomFilter struct {
	layers []bloomLayer
	keys   int   // added, deleted ones included
	bytes  int64 // of its layers, taken from the budget
	over   bool
}

// bloomBudget is the memory the filters of one owner may hold.
type bloomBudget struct{ used, limit int64 }

const (
	bloomBitsPerKey = 10
	bloomProbes     = 7
	bloomFirstKeys  = 1 << 16 // keys the first layer holds (80 KiB)
)

// bloomLayer is one fixed-size Bloom filter.
type bloomLayer struct {
	bits []uint64
	m    uint64 // bits
	n    int    // added
	cap  int    // keys it is sized for
}

// add adds h, growing within budget.
func (f *bloomFilter) add(h uint64, budget *bloomBudget) {
	if f.over {
		return
	}
	if n := len(f.layers); n == 0 || f.layers[n-1].n >= f.layers[n-1].cap {
		keys := bloomFirstKeys << n
		m := uint64(keys*bloomBitsPerKey+63) &^ 63
		// m > 2^32 would overflow the probes' multiply-shift mapping.
		if m > 1<<32 || budget.used+int64(m/8) > budget.limit {
			f.release(budget)
			f.over = true
			return
		}
		budget.used += int64(m / 8)
		f.bytes += int64(m / 8)
		f.layers = append(f.layers, bloomLayer{bits: make([]uint64, m/64), m: m, cap: keys})
	}
	l := &f.layers[len(f.layers)-1]
	h1, h2 := uint32(h), uint32(h>>32)|1
	for i := uint32(0); i < bloomProbes; i++ {
		p := (uint64(h1+i*h2) * l.m) >> 32 // double hashing, mapped to [0, m) by multiplication
		l.bits[p/64] |= 1 << (p % 64)
	}
	l.n++
	f.keys++
}

// mayHave is false only if h was never added (and the filter is not over).
func (f *bloomFilter) mayHave(h uint64) bool {
	if f.over {
		return true
	}
	h1, h2 := uint32(h), uint32(h>>32)|1
layers:
	for i := range f.layers {
		l := &f.layers[i]
		for j := uint32(0); j < bloomProbes; j++ {
			p := (uint64(h1+j*h2) * l.m) >> 32
			if l.bits[p/64]&(1<<(p%64)) == 0 {
				continue layers
			}
		}
		return true
	}
	return false
}

// release gives the filter's memory back to budget and empties it.
func (f *bloomFilter) release(budget *bloomBudget) {
	budget.used -= f.bytes
	f.bytes, f.layers = 0, nil
}
