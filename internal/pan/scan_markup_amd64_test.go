//go:build amd64 && !purego

package pan

import (
	"math/rand/v2"
	"testing"
)

// TestBlockMasksMarkupAVX2: on JSON-like text with markup at and across
// block edges, the AVX2 filter prunes exactly as the portable one.
func TestBlockMasksMarkupAVX2(t *testing.T) {
	checkMasksAVX2(t, rand.New(rand.NewPCG(3, 4)), func(r *rand.Rand, _ int, b []byte) { jsonFields(r, b) })
}
