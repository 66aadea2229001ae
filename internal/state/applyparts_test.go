package state

import "testing"

func TestApplyPartsWritesEveryPartitionAndCheckpoint(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	err := store.ApplyParts([]PartPuts{
		{Part: 0, Puts: []Put{{Key: []byte("a"), Value: []byte("va"), TS: 10}}, CP: Checkpoint{Next: 5, StreamTime: 3}},
		{Part: 2, Puts: []Put{{Key: []byte("b"), Value: []byte("vb"), TS: 20}, {Key: []byte("c"), Value: []byte("vc"), TS: 7}}, CP: Checkpoint{Next: 9}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		part int32
		key  string
		ts   int64
	}{{0, "a", 10}, {2, "b", 20}, {2, "c", 7}} {
		e, ok, err := store.Get(c.part, []byte(c.key))
		if err != nil || !ok || e.TS != c.ts || string(e.Value) != "v"+c.key {
			t.Fatalf("%d/%s: %+v ok=%v err=%v", c.part, c.key, e, ok, err)
		}
	}
	if _, ok, _ := store.Get(0, []byte("b")); ok {
		t.Fatal("a key written to partition 2 is visible in partition 0")
	}
	// Checkpoints as given, stream time raised to the newest put, as Apply.
	for part, want := range map[int32]Checkpoint{0: {Next: 5, StreamTime: 10}, 2: {Next: 9, StreamTime: 20}} {
		cp, held, err := store.Checkpoint(part)
		if err != nil || !held || cp != want {
			t.Fatalf("checkpoint %d: %+v held=%v err=%v, want %+v", part, cp, held, err, want)
		}
	}
}
