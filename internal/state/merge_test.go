package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The merge heap orders keys sharing a prefix as bytes.Compare does, with
// their 8-byte prefixes after it compared first: short keys, keys that
// are prefixes of others, zero bytes, and long equal prefixes.
func TestRunHeapOrderMatchesBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	shared := []byte("d0000idem-")
	mk := func() []byte {
		k := append([]byte(nil), shared...)
		n := rng.IntN(14)
		for range n {
			k = append(k, []byte{0, 1, 'a', 'b', 0xff}[rng.IntN(5)])
		}
		return k
	}
	for range 200000 {
		a, b := mk(), mk()
		ra := &runReader{key: a, pfx: keyPrefix64(a, len(shared)), seq: 1}
		rb := &runReader{key: b, pfx: keyPrefix64(b, len(shared)), seq: 0}
		h := runHeap{ra, rb}
		want := bytes.Compare(a, b) < 0 || bytes.Equal(a, b) // equal keys: the newer run (seq 1) first
		if got := h.less(0, 1); got != want {
			t.Fatalf("less(%q, %q) = %v, want %v", a, b, got, want)
		}
	}
}

// A bulk restore whose first chunks' keys share a long prefix that later
// chunks' keys do not (the merge's shared prefix narrows chunk by chunk)
// leaves the store a batch restore leaves.
func TestBulkRestoreSharedPrefixNarrows(t *testing.T) {
	opts := cluster(t, 1)
	base := int64(1_700_000_000_000)
	var recs []*kgo.Record
	for i := range 40 {
		recs = append(recs, rec(0, fmt.Sprintf("shared-long-prefix-%03d", i), base+int64(i)))
	}
	for i, k := range []string{"shared-long-prefiy", "shared-long-prefix", "shared", "s", "b1", "", "shared-long-prefix-000x", "a", "shared-long-prefix-007"} {
		recs = append(recs, rec(0, k, base+100+int64(i)))
	}
	for i := range 40 {
		recs = append(recs, rec(0, fmt.Sprintf("z%d", i*7%40), base+200+int64(i)))
	}
	txnProduce(t, opts, true, recs...)
	batch, bulk, _ := restoreBoth(t, &Changelog{Topic: topic, ClientOpts: opts, BulkMin: 1, chunkRecords: 9})
	compareDumps(t, "bulk", dump(t, bulk), dump(t, batch))
}
