package tokenizer

import (
	"fmt"
	"testing"
	"time"
)

func TestIdemStatePendingCommitAbortAndSweep(t *testing.T) {
	s := newIdemState(time.Hour)
	s.set(0, map[string]idemEntry{})
	h := time.Hour.Milliseconds()
	s.add(0, "k", idemEntry{Context: "c", TS: 0})
	if _, ok := s.seen(0, "k", 10); !ok {
		t.Fatal("pending entry not seen within its transaction")
	}
	s.end(false)
	if _, ok := s.seen(0, "k", 10); ok {
		t.Fatal("aborted entry survived")
	}
	s.add(0, "k", idemEntry{Context: "c", TS: 0})
	s.end(true)
	if _, ok := s.seen(0, "k", h-1); !ok {
		t.Fatal("committed entry not seen within the window")
	}
	if _, ok := s.seen(0, "k", h); ok {
		t.Fatal("entry seen at exactly the window")
	}
	// Revoked partitions' pending additions are not applied.
	s.add(1, "x", idemEntry{TS: 0})
	s.end(true)
	if s.owns(1) {
		t.Fatal("unowned partition became owned")
	}
	// Sweep: entries older than two windows before the newest go.
	for i := 0; i < sweepEvery; i++ {
		s.add(0, fmt.Sprint("n", i), idemEntry{TS: 3 * h})
		s.end(true)
	}
	if _, ok := s.committed[0]["k"]; ok || s.size() != sweepEvery {
		t.Fatalf("sweep kept the old entry or lost new ones: size %d", s.size())
	}
	s.drop([]int32{0})
	if s.owns(0) || s.size() != 0 {
		t.Fatal("drop kept state")
	}
}
