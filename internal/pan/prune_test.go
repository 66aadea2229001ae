package pan

import (
	"math/bits"
	"math/rand/v2"
	"testing"
)

// TestPruneSound: every candidate prune drops is one the scalar path
// would drop too (quickRun skips the run it starts), on random text of
// digits, separators, letters, escapes and non-ASCII bytes around block
// edges, so pruning never costs recall.
func TestPruneSound(t *testing.T) {
	alphabets := []string{
		"0123456789 -.:/_+x=",
		"0123456789 -x",
		"01234567890123456789      ..--xy\t\n%&\\\xc3\xe2\x80",
		"1 1 1 1 1 1 1 1 1 1 1 1 1 1 - ",
		"0123456789012345678 ,\"'<>=\r\nspan/td",
	}
	checkPruneSound(t, rand.New(rand.NewPCG(5, 6)), func(r *rand.Rand, round int, b []byte) {
		a := alphabets[round%len(alphabets)]
		for i := range b {
			b[i] = a[r.IntN(len(a))]
		}
	})
}

// checkPruneSound fills a 4-block buffer 30,000 times and checks, for each
// block, that prune never adds a candidate and that every candidate it
// drops is a digit whose run quickRun skips too. Failures name positions
// only: the random digits can form a card number.
func checkPruneSound(t *testing.T, r *rand.Rand, fill func(r *rand.Rand, round int, b []byte)) {
	t.Helper()
	b := make([]byte, 4*blockSize)
	dropped := 0
	for round := 0; round < 30000; round++ {
		fill(r, round, b)
		masks := func(bs int) (d, s, i uint64) { return tailMasks(b[:bs+blockSize], bs) }
		for bs := blockSize; bs+blockSize <= len(b); bs += blockSize {
			pd, ps, _ := masks(bs - blockSize)
			d, s, i := masks(bs)
			c := candidates(d, s, i, pd, ps)
			pc := prune(b, bs, len(b), c, d, s, pd, ps)
			if pc&^c != 0 {
				t.Fatalf("round %d: prune added candidates", round)
			}
			for x := c &^ pc; x != 0; x &= x - 1 {
				p := bs + bits.TrailingZeros64(x)
				if !isDigit(b[p]) {
					t.Fatalf("round %d: pruned a candidate at %d that is not a digit", round, p)
				}
				sc := scanner{b: b, bs: noBlock}
				if _, skip := sc.quickRun(runStart(b, 0, p)); !skip {
					t.Fatalf("round %d: pruned candidate at %d that quickRun keeps", round, p)
				}
				dropped++
			}
		}
	}
	if dropped == 0 {
		t.Fatal("nothing pruned: the test checks nothing")
	}
	t.Logf("%d pruned candidates checked", dropped)
}
