package state

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// dataOnly is the entries of a dump ('d' keys).
func dataOnly(d map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range d {
		if k[0] == kindData {
			out[k] = v
		}
	}
	return out
}

// Expiry of bulk-loaded entries (indexed in groups) deletes exactly what
// expiry of the same entries written by Apply (indexed one by one)
// deletes, at every cutoff: timestamps out of order (groups around the
// cutoff are cut and rewritten), keys rewritten later by Apply and by a
// second Ingest, deletions, and a small limit (expiry in many steps).
func TestExpireGroupsEqualsSingles(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	mk := func(n, from int) []Put {
		var puts []Put
		for i := range n {
			p := Put{Key: fmt.Appendf(nil, "key-%d", rng.IntN(6000)), Value: fmt.Appendf(nil, "v%d", from+i),
				TS: int64(from+i)*3 + rng.Int64N(2500) - 1200}
			if rng.IntN(20) == 0 {
				p.Value = nil
			}
			puts = append(puts, p)
		}
		return puts
	}
	first, second, live := mk(8000, 0), mk(3000, 8000), mk(500, 11000)
	bulk := openStore(t, t.TempDir())
	defer bulk.Close()
	ref := openStore(t, t.TempDir())
	defer ref.Close()
	steps := []struct {
		puts []Put
		cp   Checkpoint
	}{{first, Checkpoint{Next: 8000}}, {second, Checkpoint{Next: 11000}}, {live, Checkpoint{Next: 11500}}}
	for i, st := range steps {
		if err := ref.Apply(0, st.puts, st.cp); err != nil {
			t.Fatal(err)
		}
		load := bulk.Ingest
		if i == 2 {
			load = bulk.Apply
		}
		if err := load(0, st.puts, st.cp); err != nil {
			t.Fatal(err)
		}
	}
	compareDumps(t, "before expiry", dump(t, bulk), dump(t, ref))
	if len(groupedIndex(t, dump(t, bulk))) == 0 {
		t.Fatal("bulk loads wrote no time index groups")
	}
	for cutoff := int64(-2000); cutoff < 40000; cutoff += 1777 {
		for _, s := range []*Store{bulk, ref} {
			for {
				n, err := s.Expire(0, cutoff, 300)
				if err != nil {
					t.Fatal(err)
				}
				if n < 300 {
					break
				}
			}
		}
		got, want := dataOnly(dump(t, bulk)), dataOnly(dump(t, ref))
		if len(got) != len(want) {
			t.Fatalf("cutoff %d: %d entries left after expiry, want %d", cutoff, len(got), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("cutoff %d: entry %q: got %q, want %q", cutoff, k, got[k], v)
			}
		}
	}
	// Everything expired: no index is left either.
	for k := range dump(t, bulk) {
		if k[0] == kindGroup || k[0] == kindTime {
			t.Fatalf("time index key %q left after every entry expired", k)
		}
	}
}

// Wipe removes the time index groups too.
func TestWipeRemovesGroups(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	if err := s.Ingest(2, []Put{{Key: []byte("a"), Value: []byte("1"), TS: 5}}, Checkpoint{Next: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Wipe(2); err != nil {
		t.Fatal(err)
	}
	if d := dump(t, s); len(d) != 0 {
		t.Fatalf("%d keys left after wipe", len(d))
	}
}
