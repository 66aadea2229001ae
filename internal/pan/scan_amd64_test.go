//go:build amd64 && !purego

package pan

import (
	"math/rand/v2"
	"testing"
)

// TestBlockMasksAVX2: the AVX2 filter computes the same masks as the
// portable one, on every byte value in every position.
func TestBlockMasksAVX2(t *testing.T) {
	checkMasksAVX2(t, rand.New(rand.NewPCG(1, 1)), func(r *rand.Rand, round int, b []byte) {
		for i := range b {
			b[i] = byte(r.IntN(256))
			if round%2 == 0 && r.IntN(3) > 0 {
				b[i] = "0123456789 -.:/_+\t\r\n%&\\abc"[r.IntN(26)]
			}
			if round%4 == 1 && r.IntN(4) > 0 {
				// Short stretches of digits and separators, as pruned.
				b[i] = "012345678 - x=\xc3\xe2%\"'<"[r.IntN(20)]
			}
		}
		if round%4 == 3 && r.IntN(3) > 0 {
			// Base64 of digits and look-alikes: the base64 signal.
			for i := range b {
				b[i] = "MNOLDTjzAEIMQUYcgkwxyz012345 3"[r.IntN(30)]
			}
		}
		if round%5 == 0 {
			for i := range b[:200] {
				b[i] = 'x'
			}
		}
	})
}

// checkMasksAVX2 fills an 8-block buffer 20,000 times and compares the
// AVX2 filter with the portable one over its first block, two blocks and
// all of it, with random state carried in from a previous block (zero
// every other round).
func checkMasksAVX2(t *testing.T, r *rand.Rand, fill func(r *rand.Rand, round int, b []byte)) {
	t.Helper()
	if !useAVX2 {
		t.Skip("no AVX2 on this CPU")
	}
	b := make([]byte, 64*8)
	for round := 0; round < 20000; round++ {
		fill(r, round, b)
		pd, ps := r.Uint64(), r.Uint64()
		if round%2 == 0 {
			pd, ps = 0, 0
		}
		for _, n := range []int{64, 128, len(b)} {
			o1, d1, s1, i1 := candMasksAVX2(&b[0], n, pd, ps, nil)
			o2, d2, s2, i2 := candMasksGeneric(b, 0, n, pd, ps)
			if o1 != o2 || d1 != d2 || s1 != s2 || i1 != i2 {
				t.Fatalf("round %d n %d: avx2 %d %x %x %x, generic %d %x %x %x", round, n, o1, d1, s1, i1, o2, d2, s2, i2)
			}
		}
	}
}

// TestFilterSetAVX2: the nibble tables of the AVX2 filter flag exactly the
// bytes the portable filter flags, for each of the 256 byte values.
func TestFilterSetAVX2(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 on this CPU")
	}
	b := make([]byte, 64)
	for v := range 256 {
		for i := range b {
			b[i] = 'x'
		}
		copy(b[6:], "11111111111") // a digit at 17 ends 12 in a row: not pruned
		b[17] = byte(v)
		o1, c1, d1, s1 := candMasksAVX2(&b[0], len(b), 0, 0, nil)
		o2, c2, d2, s2 := candMasksGeneric(b, 0, len(b), 0, 0)
		if o1 != o2 || c1 != c2 || d1 != d2 || s1 != s2 {
			t.Fatalf("byte %#02x: avx2 %d %x %x %x, generic %d %x %x %x", v, o1, c1, d1, s1, o2, c2, d2, s2)
		}
		want := isDigit(byte(v)) || v == '%' || v == '\\' || v == '&' || filterLead[v]
		if got := c1&(1<<17) != 0; got != want {
			t.Fatalf("byte %#02x: flagged %v, want %v", v, got, want)
		}
	}
}
