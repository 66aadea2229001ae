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
			radixSort(keys, nil)
			if !slices.Equal(keys, want) {
				t.Fatalf("n=%d mask=%x: radix sort differs from a stable sort", n, mask)
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
