package state

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// keyed is a record of key on the partition kgo's default partitioner
// (and Follower.Partition) gives it among parts.
func keyed(key string, parts int, ts int64) *kgo.Record {
	r := rec(0, key, ts)
	r.Partition = int32(kgo.StickyKeyPartitioner(nil).ForTopic(topic).Partition(r, parts))
	return r
}

// catchUp returns once f's store holds every record of the keys'
// partitions committed before the call, or ctx ends: ListKeyEnds then
// WaitFor, as the gateway's committer does for a batch without records of
// its own.
func catchUp(ctx context.Context, f *Follower, keys ...string) error {
	var ks [][]byte
	for _, k := range keys {
		ks = append(ks, []byte(k))
	}
	ends, err := f.ListKeyEnds(ctx, ks)
	if err != nil {
		return err
	}
	return f.WaitFor(ctx, ends, nil)
}

func runFollower(t *testing.T, opts []kgo.Opt, store *Store, fo FollowerOpts) (*Follower, func()) {
	t.Helper()
	fo.Logger = quiet()
	f := NewFollower(store, &Changelog{Topic: topic, ClientOpts: opts}, fo)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := f.WaitReady(wctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	// The key filter is filled after ready: wait for it, so the scenario
	// checks the filter's answers, not Pebble's.
	for f.filter != nil && !f.filter.isArmed() {
		if wctx.Err() != nil {
			cancel()
			t.Fatal("the key filter was not armed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return f, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("follower: %v", err)
		}
	}
}

// TestFollowerReadyReportsAStaleTail: a follower whose brokers stop
// answering says so in Ready even when nothing asks it for a key (an idle
// tail still hears a response every long poll), and is ready again once
// they answer.
func TestFollowerReadyReportsAStaleTail(t *testing.T) {
	c, opts := fakeCluster(t, 2)
	store := openStore(t, t.TempDir())
	defer store.Close()
	const stale = 400 * time.Millisecond
	f, stop := runFollower(t, opts, store, FollowerOpts{StaleAfter: stale})
	defer stop()
	time.Sleep(3 * stale) // idle, brokers answering
	if err := f.Ready(); err != nil {
		t.Fatalf("idle follower: %v", err)
	}
	var down atomic.Bool
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return nil, errors.New("down"), down.Load()
	})
	down.Store(true)
	waitReady := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for err := f.Ready(); (err == nil) != want; err = f.Ready() {
			if time.Now().After(deadline) {
				t.Fatalf("Ready = %v, want ready=%v", err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitReady(false)
	if err := f.Ready(); !strings.Contains(err.Error(), "no answer from Kafka") {
		t.Fatalf("Ready = %v, want the stale tail", err)
	}
	down.Store(false)
	waitReady(true)
}

func TestFollowerRestoresTailsAndCatchesUp(t *testing.T) {
	t.Run("pebble", func(t *testing.T) { followerScenario(t, 0) })
	// The same answers with the in-memory key filter in front of Pebble:
	// it must know restored keys, other writers' keys, our own and the
	// keys a restart finds on disk.
	t.Run("filter", func(t *testing.T) { followerScenario(t, 1<<20) })
}

func followerScenario(t *testing.T, filterBytes int64) {
	opts := cluster(t, 3)
	now := time.Now()
	ms := now.UnixMilli()
	txnProduce(t, opts, true, keyed("before", 3, ms))
	store := openStore(t, t.TempDir())
	defer store.Close()
	f, stop := runFollower(t, opts, store, FollowerOpts{Window: time.Hour, FilterBytes: filterBytes})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, ok, err := f.Get([]byte("before"), now); err != nil || !ok {
		t.Fatalf("restored key: ok=%v err=%v", ok, err)
	}
	// Another writer commits one key and aborts another: after catching up
	// the committed one is there, at once, and the aborted one is not.
	txnProduce(t, opts, true, keyed("other", 3, ms))
	txnProduce(t, opts, false, keyed("aborted", 3, ms))
	for _, k := range []string{"other", "aborted"} {
		if err := catchUp(ctx, f, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := f.Get([]byte("other"), now); !ok {
		t.Fatalf("a key committed before catching up is missing after it")
	}
	if _, ok, _ := f.Get([]byte("aborted"), now); ok {
		t.Fatalf("an aborted key is visible")
	}
	if _, ok, _ := f.Get([]byte("never-written"), now); ok {
		t.Fatalf("a key nobody wrote is visible")
	}
	// Our own committed records are known at once, and tailing them back
	// neither fails nor loses them.
	mine := keyed("mine", 3, ms)
	txnProduce(t, opts, true, mine) // sets mine.Offset
	if err := f.Committed([]*kgo.Record{mine}); err != nil {
		t.Fatal(err)
	}
	if e, ok, _ := f.Get([]byte("mine"), now); !ok || string(e.Value) != "v-mine" {
		t.Fatalf("own committed key: ok=%v", ok)
	}
	if err := catchUp(ctx, f, "mine"); err != nil {
		t.Fatal(err)
	}
	// Outside the window: not returned.
	if _, ok, _ := f.Get([]byte("other"), now.Add(2*time.Hour)); ok {
		t.Fatalf("a key outside the window is returned")
	}
	stop()

	// A restart on the same store resumes from the checkpoint.
	cp, held, err := store.Checkpoint(mine.Partition)
	if err != nil || !held || cp.Next <= 0 {
		t.Fatalf("checkpoint of partition %d: %+v held=%v err=%v", mine.Partition, cp, held, err)
	}
	txnProduce(t, opts, true, keyed("while-down", 3, ms))
	f2, stop2 := runFollower(t, opts, store, FollowerOpts{Window: time.Hour, FilterBytes: filterBytes})
	defer stop2()
	for _, k := range []string{"before", "other", "mine", "while-down"} {
		if err := catchUp(ctx, f2, k); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := f2.Get([]byte(k), now); !ok {
			t.Fatalf("%s missing after restart", k)
		}
	}
	if err := f2.Ready(); err != nil {
		t.Fatal(err)
	}
}
