package state

import (
	"context"
	"slices"
	"testing"
	"time"
)

// A revoked partition's restore is cancelled and its data kept for a warm
// re-assignment; if none comes within KeepRevoked it is wiped. Partitions a
// previous process held and this one is never assigned are wiped too.
func TestRevokedPartitionsKeptThenWiped(t *testing.T) {
	opts := cluster(t, 2)
	base := int64(1_700_000_000_000)
	txnProduce(t, opts, true, rec(0, "a", base), rec(1, "x", base))
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	keep := 300 * time.Millisecond
	tbl := NewTable(s, &Changelog{Topic: topic, ClientOpts: opts}, TableOpts{Logger: quiet(), KeepRevoked: keep})
	tbl.Assign([]int32{0, 1}, nil, nil)
	for _, p := range []int32{0, 1} {
		if err := tbl.WaitRestored(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// Revoked and assigned again within KeepRevoked: warm, nothing wiped.
	tbl.Revoke([]int32{0})
	if got := tbl.Revoked(); !slices.Equal(got, []int32{0}) {
		t.Fatalf("revoked partitions kept: %v, want [0]", got)
	}
	tbl.Assign([]int32{0}, nil, nil)
	if err := tbl.WaitRestored(ctx, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * keep)
	if _, ok, _ := s.Get(0, []byte("a")); !ok {
		t.Fatal("a re-assigned partition was wiped")
	}
	// Revoked for good: wiped after KeepRevoked.
	tbl.Revoke([]int32{1})
	if _, held, _ := s.Checkpoint(1); !held {
		t.Fatal("revoked partition wiped at once, want kept for KeepRevoked")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, held, _ := s.Checkpoint(1)
		if n, _ := s.Count(1); !held && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("revoked partition not wiped")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(tbl.Revoked()) != 0 {
		t.Fatalf("still pending wipes: %v", tbl.Revoked())
	}
	tbl.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A new process: partition 0 (held before) is never assigned, so it
	// is wiped after KeepRevoked.
	s = openStore(t, dir)
	defer s.Close()
	tbl = NewTable(s, &Changelog{Topic: topic, ClientOpts: opts}, TableOpts{Logger: quiet(), KeepRevoked: keep})
	defer tbl.Close()
	if got := tbl.Revoked(); !slices.Equal(got, []int32{0}) {
		t.Fatalf("held partitions from the previous process: %v, want [0]", got)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		if _, held, _ := s.Checkpoint(0); !held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("partition held by the previous process and not assigned was not wiped")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
