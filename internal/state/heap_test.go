package state

import (
	"math/rand/v2"
	"testing"
)

// fixTop keeps the merge heap ordered (key, then newest run first) after
// its top reader advances to any key, including keys equal to others'.
func TestRunHeapFixTop(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	key := func() []byte { return []byte{byte(r.IntN(20))} }
	for n := 1; n <= 23; n++ {
		h := make(runHeap, n)
		for i := range h {
			h[i] = &runReader{key: key(), seq: i}
		}
		for i := n/2 - 1; i >= 0; i-- {
			h.down(i)
		}
		for step := 0; step < 200; step++ {
			h[0].key = key()
			h.fixTop()
			for i := 1; i < len(h); i++ {
				if h.less(i, (i-1)/2) {
					t.Fatalf("%d readers, step %d: reader %d orders before its parent", n, step, i)
				}
			}
		}
	}
}
