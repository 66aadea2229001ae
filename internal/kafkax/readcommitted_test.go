package kafkax_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/kafkax"
)

// TestReadCommittedAfterBrokerCrash reproduces what a broker SIGKILL leaves
// on disk: a transaction open at the crash, aborted on restart without an
// abort marker, followed by a committed transaction of the same producer.
// The crash is simulated by copying the data directory while the broker runs
// (the files as a SIGKILL leaves them: no shutdown save) and starting a new
// broker on the copy. ReadCommitted must return exactly the committed
// records, and finish: it must not wait for a record at the last stable
// offset that the read_committed view never shows.
func TestReadCommittedAfterBrokerCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir1, dir2 := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	c1, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir1), kfake.SeedTopics(1, "state"))
	if err != nil {
		t.Fatal(err)
	}
	p1 := txnProducer(t, c1.ListenAddrs())
	commitTxn(ctx, t, p1, "before-", 3)
	if err := p1.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := p1.ProduceSync(ctx, &kgo.Record{Topic: "state", Value: fmt.Appendf(nil, "open-%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyDir(dir1, dir2); err != nil { // the crash image
		t.Fatal(err)
	}
	p1.Close()
	c1.Close()

	c2, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir2))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	p2 := txnProducer(t, c2.ListenAddrs())
	defer p2.Close()
	commitTxn(ctx, t, p2, "after-", 3)

	cl, err := kgo.NewClient(kgo.SeedBrokers(c2.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListCommittedOffsets(ctx, "state")
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup("state", 0)
	var got []string
	var last int64
	err = kafkax.ReadCommitted(ctx, cl, "state", map[int32]int64{0: 0}, map[int32]int64{0: end.Offset},
		func(r *kgo.Record) error { got = append(got, string(r.Value)); return nil },
		func(_ int32, next, _ int64) { last = next })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"before-0", "before-1", "before-2", "after-0", "after-1", "after-2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	if last != end.Offset {
		t.Fatalf("progress ended at %d, want the last stable offset %d", last, end.Offset)
	}
	// The allocation-free decoder reads the same, from the start and
	// from the middle of a batch.
	for _, from := range []int64{0, 1} {
		got, last = nil, 0
		err = kafkax.ReadCommittedReused(ctx, cl, "state", map[int32]int64{0: from}, map[int32]int64{0: end.Offset},
			func(r *kgo.Record) error { got = append(got, string(r.Value)); return nil },
			func(_ int32, next, _ int64) { last = next })
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want[from:]) || last != end.Offset {
			t.Fatalf("reused decoder from %d: read %v up to %d, want %v up to %d", from, got, last, want[from:], end.Offset)
		}
	}
}

func txnProducer(t *testing.T, addrs []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.TransactionalID("state-writer"), kgo.DefaultProduceTopic("state"))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func commitTxn(ctx context.Context, t *testing.T, cl *kgo.Client, prefix string, n int) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "state", Value: fmt.Appendf(nil, "%s%d", prefix, i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
}

func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

// TestMarkerlessAbortsRepair: after the simulated crash, the open
// transaction is found, an abort marker closes it, and a plain kgo
// read_committed consumer then sees the producer's next committed
// transaction (without the marker it silently drops it).
func TestMarkerlessAbortsRepair(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir1, dir2 := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	c1, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir1), kfake.SeedTopics(1, "state"))
	if err != nil {
		t.Fatal(err)
	}
	p1 := txnProducer(t, c1.ListenAddrs())
	commitTxn(ctx, t, p1, "before-", 2)
	if err := p1.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p1.ProduceSync(ctx, &kgo.Record{Topic: "state", Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := copyDir(dir1, dir2); err != nil {
		t.Fatal(err)
	}
	p1.Close()
	c1.Close()
	c2, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir2))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c2.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	open, err := kafkax.MarkerlessAborts(ctx, cl, "state")
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || open[0].Partition != 0 {
		t.Fatalf("open aborts %+v, want one on partition 0", open)
	}
	if err := kafkax.WriteAbortMarkers(ctx, cl, "state", open); err != nil {
		t.Fatal(err)
	}
	if again, err := kafkax.MarkerlessAborts(ctx, cl, "state"); err != nil || len(again) != 0 {
		t.Fatalf("after repair: %+v %v, want none", again, err)
	}
	p2 := txnProducer(t, c2.ListenAddrs())
	defer p2.Close()
	commitTxn(ctx, t, p2, "after-", 2)
	got := consumeCommitted(ctx, t, c2.ListenAddrs(), 4)
	if want := "[before-0 before-1 after-0 after-1]"; fmt.Sprint(got) != want {
		t.Fatalf("kgo read_committed consumer read %v, want %s", got, want)
	}
}

func consumeCommitted(ctx context.Context, t *testing.T, addrs []string, n int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics("state"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var got []string
	for len(got) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}
