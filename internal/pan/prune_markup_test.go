package pan

import (
	"math/rand/v2"
	"testing"
)

// jsonFields is JSON-like text whose numbers end near block edges with a
// quote, '<' or '=' after them, the digits of the next field sometimes
// inside the markup window and sometimes just past it.
func jsonFields(r *rand.Rand, b []byte) {
	parts := []string{`","amount":`, `","ip":"`, `",`, `"`, `'`, `</td><td>`, `<br>`, "=\r\n", "=\n", `=`, ` `, `-`, `x`, `\u0034`, "\xc3"}
	for k := 0; k < len(b); {
		for n := 1 + r.IntN(9); n > 0 && k < len(b); n-- {
			b[k] = byte('0' + r.IntN(10))
			k++
		}
		k += copy(b[k:], parts[r.IntN(len(parts))])
	}
}

// TestPruneMarkupSound: prune's look past a block edge for markup that
// may continue a stretch drops only candidates the scalar path drops
// too.
func TestPruneMarkupSound(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	b := make([]byte, 4*blockSize)
	dropped := 0
	for round := 0; round < 30000; round++ {
		jsonFields(r, b)
		masks := func(bs int) (d, s, i uint64) { return tailMasks(b[:bs+blockSize], bs) }
		for bs := blockSize; bs+blockSize <= len(b); bs += blockSize {
			pd, ps, _ := masks(bs - blockSize)
			d, s, i := masks(bs)
			c := candidates(d, s, i, pd, ps)
			pc := prune(b, bs, len(b), c, d, s, pd, ps)
			for x := c &^ pc; x != 0; x &= x - 1 {
				p := bs + trailingZeros(x)
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

func trailingZeros(x uint64) int {
	k := 0
	for x>>k&1 == 0 {
		k++
	}
	return k
}
