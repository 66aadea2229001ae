package state

import (
	"fmt"
	"testing"
)

func TestFollowerFilterNeverDeniesAnAddedKey(t *testing.T) {
	const window = 8000 // ms: buckets of 1000 ms
	f := newFollowerFilter(window, 64<<20)
	if !f.mayContain(0, []byte("k"), 0) {
		t.Fatal("an unarmed filter must answer maybe")
	}
	f.arm()
	// One bucket per partition, each past its first layer (64Ki keys):
	// the second layer is used too.
	const n = 3*bloomFirstKeys + 3000
	for i := range n {
		f.add(int32(i%3), []byte(fmt.Sprintf("key-%d", i)), 100)
	}
	for _, b := range f.parts[0] {
		if len(b.layers) != 2 {
			t.Fatalf("%d layers, want 2", len(b.layers))
		}
	}
	for i := range n {
		if !f.mayContain(int32(i%3), []byte(fmt.Sprintf("key-%d", i)), 5000) {
			t.Fatalf("added key %d denied", i)
		}
	}
	fp := 0
	for i := range n {
		if f.mayContain(int32(i%3), []byte(fmt.Sprintf("other-%d", i)), 5000) {
			fp++
		}
	}
	// About 1% from each full layer.
	if rate := float64(fp) / n; rate > 0.05 {
		t.Fatalf("false positive rate %.3f", rate)
	}
}

func TestFollowerFilterWindowAndExpiry(t *testing.T) {
	const window = 8000
	f := newFollowerFilter(window, 64<<20)
	f.arm()
	f.add(1, []byte("old"), 1500) // bucket [1000, 2000)
	if !f.mayContain(1, []byte("old"), 9000) {
		t.Fatal("a key whose bucket may hold live entries must be maybe")
	}
	// At now = 10000 every entry of the bucket is out of the window
	// (ts <= now - window): the store's Get would not return it either.
	if f.mayContain(1, []byte("old"), 10000) {
		t.Fatal("a bucket out of the window still answers")
	}
	// Expiry below the bucket's end keeps it; at or past it drops it.
	f.expired(1, 1998)
	if !f.mayContain(1, []byte("old"), 9000) {
		t.Fatal("a bucket with entries newer than the cutoff was dropped")
	}
	used := f.budget.used
	f.expired(1, 1999)
	if f.mayContain(1, []byte("old"), 9000) || f.budget.used >= used {
		t.Fatalf("an expired bucket was kept (used %d -> %d)", used, f.budget.used)
	}
	// Another partition is not affected by a partition's expiry.
	f.add(2, []byte("p2"), 1500)
	f.expired(1, 1_000_000)
	if !f.mayContain(2, []byte("p2"), 9000) {
		t.Fatal("expiry of one partition dropped another's keys")
	}
}

func TestFollowerFilterOverBudgetAnswersMaybe(t *testing.T) {
	// Room for the first layer only (80 KiB): the second layer would pass
	// the budget, so the bucket stops taking keys and answers maybe.
	f := newFollowerFilter(8000, 100<<10)
	f.arm()
	for i := range bloomFirstKeys + 10 {
		f.add(0, []byte(fmt.Sprintf("key-%d", i)), 100)
	}
	if !f.mayContain(0, []byte("never-added"), 100) {
		t.Fatal("a saturated bucket must answer maybe")
	}
	if f.budget.used != 0 {
		t.Fatalf("a saturated bucket still holds %d bytes", f.budget.used)
	}
	// Other buckets keep working.
	f.add(0, []byte("later"), 5000)
	if !f.mayContain(0, []byte("later"), 5000) {
		t.Fatal("added key denied")
	}
}
