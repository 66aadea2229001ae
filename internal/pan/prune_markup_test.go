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
	checkPruneSound(t, rand.New(rand.NewPCG(7, 8)), func(r *rand.Rand, _ int, b []byte) { jsonFields(r, b) })
}
