package state

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
)

const topic = "state.changelog"

func cluster(t *testing.T, parts int32) []kgo.Opt {
	t.Helper()
	_, opts := fakeCluster(t, parts)
	return opts
}

// fakeCluster is cluster with the kfake cluster, for tests that control
// its answers.
func fakeCluster(t *testing.T, parts int32) (*kfake.Cluster, []kgo.Opt) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
}

// openTxn begins a transaction writing recs and leaves it open.
func openTxn(t *testing.T, opts []kgo.Opt, id string, recs ...*kgo.Record) *kgo.Client {
	t.Helper()
	cl := devstacktest.OpenTxn(t, opts, id, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for _, r := range recs {
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return cl
}

// txnProduce writes recs in one transaction and commits or aborts it.
func txnProduce(t *testing.T, opts []kgo.Opt, commit bool, recs ...*kgo.Record) {
	t.Helper()
	cl := openTxn(t, opts, fmt.Sprintf("txn-%d", time.Now().UnixNano()), recs...)
	if err := cl.EndTransaction(context.Background(), kgo.TransactionEndTry(commit)); err != nil {
		t.Fatal(err)
	}
}

func rec(part int32, key string, ts int64) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: part, Key: []byte(key), Value: []byte("v-" + key), Timestamp: time.UnixMilli(ts)}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, StoreOpts{CacheBytes: 1 << 20, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Restores read committed data only, resume from the checkpoint kept in the
// store, and skip entries already outside the window.
func TestRestoreCommittedTailAndWindow(t *testing.T) {
	opts := cluster(t, 2)
	base := int64(1_700_000_000_000)
	txnProduce(t, opts, true, rec(0, "a", base), rec(0, "b", base+1000), rec(1, "x", base))
	txnProduce(t, opts, false, rec(0, "aborted", base+2000))
	txnProduce(t, opts, true, rec(0, "c", base+3000))

	dir := t.TempDir()
	s := openStore(t, dir)
	cl := &Changelog{Topic: topic, ClientOpts: opts}
	ctx := context.Background()
	pr, err := cl.Restore(ctx, s, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Records != 3 {
		t.Fatalf("restored %d records, want 3 (a, b, c; not the aborted one)", pr.Records)
	}
	if _, ok, _ := s.Get(0, []byte("aborted")); ok {
		t.Fatal("aborted changelog record reached the store")
	}
	cp, ok, err := s.Checkpoint(0)
	if err != nil || !ok || cp.Next != pr.End || cp.StreamTime != base+3000 {
		t.Fatalf("checkpoint %+v ok=%v err=%v, want next=%d stream=%d", cp, ok, err, pr.End, base+3000)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Warm restart: only the tail after the checkpoint is read.
	txnProduce(t, opts, true, rec(0, "d", base+4000))
	s = openStore(t, dir)
	defer s.Close()
	pr, err = cl.Restore(ctx, s, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Records != 1 || pr.From != cp.Next {
		t.Fatalf("warm restore read %d records from %d, want 1 from checkpoint %d", pr.Records, pr.From, cp.Next)
	}
	for _, k := range []string{"a", "b", "c", "d"} {
		if e, ok, err := s.Get(0, []byte(k)); err != nil || !ok || string(e.Value) != "v-"+k {
			t.Fatalf("key %s: %+v %v %v", k, e, ok, err)
		}
	}

	// A window: entries older than the window behind the newest are not
	// loaded by a fresh restore.
	s2 := openStore(t, t.TempDir())
	defer s2.Close()
	tbl := NewTable(s2, &Changelog{Topic: topic, ClientOpts: opts}, TableOpts{Window: 2500 * time.Millisecond, Logger: quiet()})
	defer tbl.Close()
	tbl.Assign([]int32{0}, nil, nil)
	if err := tbl.WaitRestored(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// stream time reaches base+4000 only at d; a and b were loaded while
	// they were live, so count what Get says, and what expiry leaves.
	for k, want := range map[string]bool{"a": false, "b": false, "c": true, "d": true} {
		if _, ok, err := tbl.Get(0, []byte(k)); err != nil || ok != want {
			t.Fatalf("Get(%s) live=%v err=%v, want %v", k, ok, err, want)
		}
	}
}

// A Table applies a transaction's writes only once it committed, with the
// changelog offsets as checkpoint; an aborted one leaves no trace, and the
// store after a restart equals a fresh restore.
func TestTableCommitAbortRestart(t *testing.T) {
	opts := cluster(t, 1)
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	tbl := NewTable(s, &Changelog{Topic: topic, ClientOpts: opts}, TableOpts{Window: time.Hour, Logger: quiet()})
	tbl.Assign([]int32{0}, nil, nil)
	if err := tbl.WaitRestored(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Ready(); err != nil {
		t.Fatalf("ready: %v", err)
	}
	prod, err := kgo.NewClient(append(append([]kgo.Opt(nil), opts...), kgo.TransactionalID("table-test"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	base := int64(1_700_000_000_000)
	txn := func(commit bool, keys ...string) {
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i, k := range keys {
			if _, ok, err := tbl.Get(0, []byte(k)); err != nil || ok {
				t.Fatalf("key %s already present (err %v)", k, err)
			}
			r := tbl.Put(0, []byte(k), []byte("v"), base+int64(i))
			if _, ok, _ := tbl.Get(0, []byte(k)); !ok {
				t.Fatalf("pending write of %s not visible in its transaction", k)
			}
			if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
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
	txn(true, "k1", "k2")
	txn(false, "k3")
	if err := tbl.WaitRestored(ctx, 0); err != nil { // re-restore after abort
		t.Fatal(err)
	}
	if _, ok, _ := tbl.Get(0, []byte("k3")); ok {
		t.Fatal("aborted write visible")
	}
	txn(true, "k3")
	cp, _, _ := s.Checkpoint(0)
	tbl.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(prod)
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(topic, 0)
	if cp.Next > end.Offset {
		t.Fatalf("checkpoint %d ahead of the stable offset %d", cp.Next, end.Offset)
	}

	s = openStore(t, dir)
	defer s.Close()
	pr, err := (&Changelog{Topic: topic, ClientOpts: opts}).Restore(ctx, s, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Records != 0 {
		t.Fatalf("warm restore after a clean apply re-read %d records, want 0", pr.Records)
	}
	for _, k := range []string{"k1", "k2", "k3"} {
		if _, ok, _ := s.Get(0, []byte(k)); !ok {
			t.Fatalf("%s missing after restart", k)
		}
	}
	if n, _ := s.Count(0); n != 3 {
		t.Fatalf("%d entries, want 3", n)
	}
}

// Expiry deletes entries at or before the cutoff, keeps rewritten keys'
// newer versions, and Wipe clears a partition.
func TestExpireAndWipe(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	var puts []Put
	for i := range 100 {
		puts = append(puts, Put{Key: fmt.Appendf(nil, "k%03d", i), Value: []byte("v"), TS: int64(i)})
	}
	if err := s.Apply(3, puts, Checkpoint{Next: 100}); err != nil {
		t.Fatal(err)
	}
	// k010 rewritten later.
	if err := s.Apply(3, []Put{{Key: []byte("k010"), Value: []byte("v2"), TS: 500}}, Checkpoint{Next: 101}); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := s.Expire(3, 49, 7)
		if err != nil {
			t.Fatal(err)
		}
		if n < 7 {
			break
		}
	}
	if n, _ := s.Count(3); n != 51 { // 50..99 and k010
		t.Fatalf("%d entries after expiry, want 51", n)
	}
	if e, ok, _ := s.Get(3, []byte("k010")); !ok || string(e.Value) != "v2" {
		t.Fatal("rewritten key expired with its old version")
	}
	if err := s.Wipe(3); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Checkpoint(3); ok {
		t.Fatal("checkpoint survived wipe")
	}
}
