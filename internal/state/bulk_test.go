package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kgo"
)

// dump returns every key and value of s (data, time index, checkpoints).
func dump(t *testing.T, s *Store) map[string]string {
	t.Helper()
	it, err := s.DB().NewIter(&pebble.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string]string{}
	for ok := it.First(); ok; ok = it.Next() {
		out[string(it.Key())] = string(it.Value())
	}
	return out
}

// rewrites returns n changelog records of partition 0 over keys distinct
// keys ("k000", ...), in turn, timestamps from base: each key written
// several times, so restores must keep the last write.
func rewrites(n, distinct int, base int64) []*kgo.Record {
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		recs = append(recs, rec(0, fmt.Sprintf("k%03d", i%distinct), base+int64(i)))
	}
	return recs
}

// A bulk restore (sorted tables ingested chunk by chunk) leaves exactly the
// store a batch restore leaves: last write wins, deletions apply across
// chunks, aborted records are skipped, the time index matches. A bulk
// restore cancelled midway leaves a checkpointed prefix that a second
// restore completes to the same store.
func TestBulkRestoreEqualsBatchRestore(t *testing.T) {
	opts := cluster(t, 1)
	base := int64(1_700_000_000_000)
	recs := rewrites(300, 120, base)
	txnProduce(t, opts, true, recs[:150]...)
	txnProduce(t, opts, false, rec(0, "aborted", base+10))
	del := rec(0, "k005", base+400)
	del.Value = nil
	txnProduce(t, opts, true, append(recs[150:], del)...)

	ctx := context.Background()
	batch, bulk, pr := restoreBoth(t, &Changelog{Topic: topic, ClientOpts: opts, BulkMin: 1, chunkRecords: 7})
	want := dump(t, batch)
	if pr.Next != pr.End {
		t.Fatalf("bulk restore stopped at %d of %d", pr.Next, pr.End)
	}
	compareDumps(t, "bulk", dump(t, bulk), want)
	if _, ok, _ := bulk.Get(0, []byte("k005")); ok {
		t.Fatal("deleted key present after bulk restore")
	}

	// Cancelled after some records, then resumed.
	dir := t.TempDir()
	part := openStore(t, dir)
	cctx, cancel := context.WithCancel(ctx)
	seen := 0
	cl := &Changelog{Topic: topic, ClientOpts: opts, BulkMin: 1, chunkRecords: 5,
		Filter: func(*kgo.Record, int64) bool {
			if seen++; seen == 100 {
				cancel()
			}
			return true
		}}
	if _, err := cl.Restore(cctx, part, 0, nil); err == nil {
		t.Fatal("cancelled restore returned no error")
	}
	cp, held, err := part.Checkpoint(0)
	if err != nil {
		t.Fatal(err)
	}
	if held && cp.Next >= pr.End {
		t.Fatalf("cancelled restore checkpointed %d, at the end %d", cp.Next, pr.End)
	}
	if err := part.Close(); err != nil {
		t.Fatal(err)
	}
	part = openStore(t, dir)
	defer part.Close()
	if _, err := (&Changelog{Topic: topic, ClientOpts: opts, BulkMin: 1, chunkRecords: 5}).Restore(ctx, part, 0, nil); err != nil {
		t.Fatal(err)
	}
	compareDumps(t, "resumed", dump(t, part), want)
}

// restoreBoth restores partition 0 of bulkCL's topic into two new stores,
// one by batches (the reference) and one with bulkCL (a bulk restore),
// and returns them (closed when the test ends) with the bulk progress.
func restoreBoth(t *testing.T, bulkCL *Changelog) (batch, bulk *Store, pr Progress) {
	t.Helper()
	ctx := context.Background()
	batch = openStore(t, t.TempDir())
	t.Cleanup(func() { batch.Close() })
	if _, err := (&Changelog{Topic: bulkCL.Topic, ClientOpts: bulkCL.ClientOpts, BulkMin: 1 << 40}).Restore(ctx, batch, 0, nil); err != nil {
		t.Fatal(err)
	}
	bulk = openStore(t, t.TempDir())
	t.Cleanup(func() { bulk.Close() })
	pr, err := bulkCL.Restore(ctx, bulk, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return batch, bulk, pr
}

func compareDumps(t *testing.T, name string, got, want map[string]string) {
	t.Helper()
	grouped := groupedIndex(t, got)
	for k, v := range want {
		if k[0] == kindMeta || k[0] == kindTime || k[0] == kindGroup {
			// Batches index every version of a key in time, bulk loads
			// only the last (expiry skips stale index entries either
			// way): checked below.
			continue
		}
		if g, ok := got[k]; !ok || g != v {
			t.Fatalf("%s: key %q: got %q (present %v), want %q", name, k, g, ok, v)
		}
	}
	for k, v := range got {
		if k[0] == kindData { // its current version is time-indexed
			ts := int64(binary.BigEndian.Uint64([]byte(v)[:8]))
			tk := string(timeKey(0, ts, []byte(k[prefixLen:])))
			if _, ok := got[tk]; !ok && !grouped[tk] {
				t.Fatalf("%s: key %q has no time index entry", name, k)
			}
		}
		if _, ok := want[k]; !ok && k[0] != kindGroup {
			t.Fatalf("%s: extra key %q", name, k)
		}
	}
	if g, w := got[string(metaKey(0))], want[string(metaKey(0))]; !bytes.Equal([]byte(g)[:8], []byte(w)[:8]) {
		t.Fatalf("%s: checkpoint offset differs", name)
	}
}

// Ingest into a store that already holds data overrides it like Apply.
func TestIngestOverridesApply(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	if err := s.Apply(1, []Put{{Key: []byte("a"), Value: []byte("old"), TS: 1}, {Key: []byte("b"), Value: []byte("x"), TS: 1}}, Checkpoint{Next: 2}); err != nil {
		t.Fatal(err)
	}
	err := s.Ingest(1, []Put{{Key: []byte("a"), Value: []byte("mid"), TS: 2}, {Key: []byte("b"), TS: 3}, {Key: []byte("a"), Value: []byte("new"), TS: 4}}, Checkpoint{Next: 5})
	if err != nil {
		t.Fatal(err)
	}
	if e, ok, _ := s.Get(1, []byte("a")); !ok || string(e.Value) != "new" || e.TS != 4 {
		t.Fatalf("a = %+v %v", e, ok)
	}
	if _, ok, _ := s.Get(1, []byte("b")); ok {
		t.Fatal("b not deleted")
	}
	if cp, _, _ := s.Checkpoint(1); cp.Next != 5 || cp.StreamTime != 4 {
		t.Fatalf("checkpoint %+v", cp)
	}
}

// BenchmarkIngest is the store-only cost of a bulk restore per key: sort, two
// tables, ingest (keys in random order, values the tokenizer's size).
func BenchmarkIngest(b *testing.B) {
	s, err := Open(b.TempDir(), StoreOpts{Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const chunk = 1 << 20
	puts := make([]Put, chunk)
	for i := range puts {
		puts[i] = Put{Key: fmt.Appendf(nil, "idem-%08x-%012d", uint32(i)*2654435761, i),
			Value: fmt.Appendf(nil, `{"ctx":"ctx_abcdefghijklmnopqrstuvwxyz","ts":%d,"off":%d}`, 1_790_000_000_000+i, i), TS: 1_790_000_000_000 + int64(i)}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Ingest(0, puts, Checkpoint{Next: int64(i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*chunk)/b.Elapsed().Seconds(), "keys/s")
}

// groupedIndex returns the time index entries held in the groups of a
// dump, as the single entries ('t' keys) they stand for.
func groupedIndex(t *testing.T, d map[string]string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for k, v := range d {
		if k[0] != kindGroup {
			continue
		}
		part := int32(binary.BigEndian.Uint32([]byte(k[1:])))
		minTS := int64(binary.BigEndian.Uint64([]byte(k[prefixLen:])) ^ (1 << 63))
		err := eachMember([]byte(v), minTS, func(ts int64, key []byte) error {
			out[string(timeKey(part, ts, key))] = true
			return nil
		})
		if err != nil {
			t.Fatalf("group %q: %v", k, err)
		}
	}
	return out
}
