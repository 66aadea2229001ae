package state

import (
	"context"
	"fmt"
	"hash/maphash"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestBloomFilterNoFalseNegatives: every added key is reported present
// across layer growth; absent keys mostly are not; past its budget a filter
// marks itself over, frees its memory and answers "maybe".
func TestBloomFilterNoFalseNegatives(t *testing.T) {
	seed := maphash.MakeSeed()
	h := func(i int) uint64 { return maphash.String(seed, fmt.Sprint("key-", i)) }
	var f bloomFilter
	budget := bloomBudget{limit: 1 << 30}
	const n = 300_000
	for i := 0; i < n; i++ {
		f.add(h(i), &budget)
	}
	if f.over || len(f.layers) < 3 || budget.used != f.bytes {
		t.Fatalf("over %v, %d layers, used %d, bytes %d", f.over, len(f.layers), budget.used, f.bytes)
	}
	for i := 0; i < n; i++ {
		if !f.mayHave(h(i)) {
			t.Fatalf("false negative for key %d", i)
		}
	}
	fp := 0
	for i := n; i < 2*n; i++ {
		if f.mayHave(h(i)) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.05 {
		t.Fatalf("false positive rate %.3f", rate)
	}
	var small bloomFilter
	budget = bloomBudget{limit: 200 << 10}
	for i := 0; i < n && !small.over; i++ {
		small.add(h(i), &budget)
	}
	if !small.over || budget.used != 0 || small.layers != nil {
		t.Fatalf("a filter past its budget: over %v, used %d", small.over, budget.used)
	}
	if !small.mayHave(h(n + 1)) {
		t.Fatal("a filter past its budget must answer maybe")
	}
}

func filterComplete(t *testing.T, tbl *Table, part int32) *tableFilter {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		tbl.mu.Lock()
		ps := tbl.parts[part]
		var f *tableFilter
		if ps != nil && ps.Status == Restored && ps.building == nil {
			f = ps.filter
		}
		tbl.mu.Unlock()
		if f != nil && f.complete {
			return f
		}
	}
	t.Fatal("the key filter was not built")
	return nil
}

// TestTableFilterIsExact: with the key filter in use, Get finds every key
// in the store: keys a previous process left on disk (warm start: only the
// scan sees them), keys committed while the scan ran, keys committed after;
// an aborted key stays absent; absent keys are answered by the filter.
func TestTableFilterIsExact(t *testing.T) {
	opts := cluster(t, 1)
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	base := int64(1_700_000_000_000)
	// A previous process's keys, checkpointed at the (empty) changelog's
	// start: the restore reads nothing, only the scan sees them.
	var puts []Put
	var onDisk []string
	for i := 0; i < 60_000; i++ {
		k := fmt.Sprintf("disk-%d", i)
		onDisk = append(onDisk, k)
		puts = append(puts, Put{Key: []byte(k), Value: []byte("v"), TS: base})
	}
	if err := s.Apply(0, puts, Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	tbl := NewTable(s, &Changelog{Topic: topic, ClientOpts: opts}, TableOpts{Window: time.Hour, Logger: quiet()})
	defer tbl.Close()
	prod, err := kgo.NewClient(append(append([]kgo.Opt(nil), opts...), kgo.TransactionalID("filter-test"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	txn := func(commit bool, keys ...string) {
		t.Helper()
		if err := tbl.WaitRestored(ctx, 0); err != nil {
			t.Fatal(err)
		}
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if _, ok, err := tbl.Get(0, []byte(k)); err != nil || ok {
				t.Fatalf("key %s present before its write (err %v)", k, err)
			}
			if err := prod.ProduceSync(ctx, tbl.Put(0, []byte(k), []byte("v"), base+1)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
		if err := tbl.Ended(commit); err != nil {
			t.Fatal(err)
		}
	}
	tbl.Assign([]int32{0}, nil, nil)
	txn(true, "during-1", "during-2") // most likely while the scan runs
	f := filterComplete(t, tbl, 0)
	txn(true, "after-1", "after-2")
	txn(false, "aborted")
	txn(true, "after-abort")
	f = filterComplete(t, tbl, 0) // rebuilt after the abort's re-restore
	want := append(append([]string(nil), onDisk...), "during-1", "during-2", "after-1", "after-2", "after-abort")
	for _, k := range want {
		if _, ok, err := tbl.Get(0, []byte(k)); err != nil || !ok {
			t.Fatalf("committed key %s not found with the filter in use (err %v)", k, err)
		}
	}
	if _, ok, _ := tbl.Get(0, []byte("aborted")); ok {
		t.Fatal("aborted key found")
	}
	answered := 0
	for i := 0; i < 10_000; i++ {
		k := []byte(fmt.Sprintf("absent-%d", i))
		if _, ok, err := tbl.Get(0, k); err != nil || ok {
			t.Fatalf("absent key found (err %v)", err)
		}
		if !f.mayHave(tbl.keyHash(k)) {
			answered++
		}
	}
	if answered < 9_000 {
		t.Fatalf("the filter answered %d of 10000 absent lookups", answered)
	}
}
