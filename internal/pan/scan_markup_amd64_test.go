//go:build amd64 && !purego

package pan

import (
	"math/rand/v2"
	"testing"
)

// TestBlockMasksMarkupAVX2: on JSON-like text with markup at and across
// block edges, the AVX2 filter prunes exactly as the portable one.
func TestBlockMasksMarkupAVX2(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 on this CPU")
	}
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, 64*8)
	for round := 0; round < 20000; round++ {
		jsonFields(r, b)
		pd, ps := r.Uint64(), r.Uint64()
		if round%2 == 0 {
			pd, ps = 0, 0
		}
		for _, n := range []int{64, 128, len(b)} {
			o1, c1, d1, s1 := candMasksAVX2(&b[0], n, pd, ps, nil)
			o2, c2, d2, s2 := candMasksGeneric(b, 0, n, pd, ps)
			if o1 != o2 || c1 != c2 || d1 != d2 || s1 != s2 {
				t.Fatalf("round %d n %d: avx2 %d %x %x %x, generic %d %x %x %x", round, n, o1, c1, d1, s1, o2, c2, d2, s2)
			}
		}
	}
}
