package state

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// radixSort orders like a stable comparison sort, whatever bits vary.
func TestRadixSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 100, 255, 256, 5000, 70000} {
		for _, mask := range []uint64{^uint64(0), 0xff, 0xff00ff0000000000, 0} {
			keys := make([]sortKey, n)
			for i := range keys {
				keys[i] = sortKey{pfx: rng.Uint64() & mask, off: uint32(i)}
			}
			want := slices.Clone(keys)
			slices.SortStableFunc(want, func(a, b sortKey) int { return cmp.Compare(a.pfx, b.pfx) })
			radixSort(keys, nil, ^uint64(0))
			if !slices.Equal(keys, want) {
				t.Fatalf("n=%d mask=%x: radix sort differs from a stable sort", n, mask)
			}
			// On the highest varying bits only: a stable sort on them.
			sub := highBits(mask, 7)
			rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
			for i := range keys {
				keys[i].off = uint32(i)
			}
			want = slices.Clone(keys)
			slices.SortStableFunc(want, func(a, b sortKey) int { return cmp.Compare(a.pfx&sub, b.pfx&sub) })
			radixSort(keys, nil, sub)
			if !slices.Equal(keys, want) {
				t.Fatalf("n=%d mask=%x sub=%x: radix sort differs from a stable sort", n, mask, sub)
			}
		}
	}
}

// Ingest of random puts (many repeated keys, deletions, keys sharing long
// prefixes, equal timestamps) leaves the entries Apply leaves.
func TestIngestEqualsApply(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var puts []Put
	for i := range 20000 {
		var k []byte
		switch rng.IntN(3) {
		case 0:
			k = fmt.Appendf(nil, "%08x", rng.IntN(3000))
		case 1:
			k = fmt.Appendf(nil, "same-long-prefix-%d", rng.IntN(3000))
		default:
			k = fmt.Appendf(nil, "s%d", rng.IntN(50))
		}
		p := Put{Key: k, Value: fmt.Appendf(nil, "v%d", i), TS: int64(i / 7)}
		if rng.IntN(10) == 0 {
			p.Value = nil
		}
		puts = append(puts, p)
	}
	a := openStore(t, t.TempDir())
	defer a.Close()
	if err := a.Apply(0, puts, Checkpoint{Next: 1}); err != nil {
		t.Fatal(err)
	}
	b := openStore(t, t.TempDir())
	defer b.Close()
	if err := b.Ingest(0, puts, Checkpoint{Next: 1}); err != nil {
		t.Fatal(err)
	}
	compareDumps(t, "ingest", dump(t, b), dump(t, a))
}

// A bulk restore whose chunks hold one key many times (the parallel merge
// splits its key space on the first chunk's keys, which then repeat) and
// spans several generations keeps the last value.
func TestBulkFewKeysManyGenerations(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	g := generation{part: 0}
	defer g.discard()
	for i := range 3 * BulkGenerationChunks {
		c := &chunk{} // not reused: a held chunk stays in use
		c.reset(0)
		for j := range 10 {
			c.add([]byte("k"), fmt.Appendf(nil, "v%d-%d", i, j), int64(i))
		}
		c.add(fmt.Appendf(nil, "u%d", i), []byte("once"), int64(i)) // indexed by this chunk's time table only
		if i%5 == 4 {
			c.add([]byte("gone"), nil, int64(i))
		} else {
			c.add([]byte("gone"), []byte("x"), int64(i))
		}
		c.cp = Checkpoint{Next: int64(i + 1)}
		var err error
		switch {
		case i == BulkGenerationChunks-1: // the whole generation spilled
			err = s.spill(&g, c)
			if err == nil {
				err = s.ingestGeneration(&g, nil)
			}
		case len(g.runs)+len(g.mem)+1 >= BulkGenerationChunks: // its last chunks merged from memory
			err = s.ingestGeneration(&g, c)
		case i%7 == 3: // held in memory, then spilled or merged from memory
			err = s.hold(&g, c)
		default:
			err = s.spillHeld(&g)
			if err == nil {
				err = s.spill(&g, c)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ingestGeneration(&g, nil); err != nil {
		t.Fatal(err)
	}
	last := 3*BulkGenerationChunks - 1
	if e, ok, _ := s.Get(0, []byte("k")); !ok || string(e.Value) != fmt.Sprintf("v%d-9", last) {
		t.Fatalf("k = %q %v, want the last value", e.Value, ok)
	}
	if _, ok, _ := s.Get(0, []byte("gone")); ok != (last%5 != 4) {
		t.Fatalf("gone present=%v", ok)
	}
	if cp, _, _ := s.Checkpoint(0); cp.Next != int64(last+1) {
		t.Fatalf("checkpoint %+v", cp)
	}
	// Every chunk's time index table was ingested, spilled, held or last:
	// expiry past every timestamp leaves nothing.
	if _, err := s.Expire(0, int64(last+1), 1<<30); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Count(0); err != nil || n != 0 {
		t.Fatalf("%d entries left after expiring everything (%v)", n, err)
	}
}
