package state

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kfake ends a transaction at once, markers included, so it never shows
// the window this guards against. answerCommitting makes its coordinator
// answer ListTransactions for pid with PrepareCommit, as Apache Kafka does
// between the commit decision and the marker, while committing is set.
func answerCommitting(c *kfake.Cluster, id string, pid int64, committing *atomic.Bool) {
	c.ControlKey(int16(kmsg.ListTransactions), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !committing.Load() {
			return nil, nil, false
		}
		req := kreq.(*kmsg.ListTransactionsRequest)
		resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
		for _, f := range req.ProducerIDFilters {
			if f == pid {
				s := kmsg.NewListTransactionsResponseTransactionState()
				s.TransactionalID, s.ProducerID, s.TransactionState = id, pid, "PrepareCommit"
				resp.TransactionStates = append(resp.TransactionStates, s)
			}
		}
		return resp, nil, true
	})
}

// TestRestoreWaitsForACommittingTransaction hands a partition over while
// its previous owner's last transaction is committing but its marker has
// not reached the changelog: the table must hold the entries of that
// transaction before the first record is processed.
func TestRestoreWaitsForACommittingTransaction(t *testing.T) {
	c, opts := fakeCluster(t, 1)
	now := time.Now().UnixMilli()
	txnProduce(t, opts, true, rec(0, "before", now))
	prev := openTxn(t, opts, "previous-owner", rec(0, "last", now+1))
	pid, _, err := prev.ProducerID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var committing atomic.Bool
	committing.Store(true)
	answerCommitting(c, "previous-owner", pid, &committing)

	store := openStore(t, t.TempDir())
	defer store.Close()
	tbl := NewTable(store, &Changelog{Topic: topic, ClientOpts: opts}, TableOpts{Logger: quiet()})
	defer tbl.Close()
	tbl.Assign([]int32{0}, nil, nil)
	const lag = 500 * time.Millisecond
	ended := make(chan struct{})
	defer func() { <-ended }()
	go func() {
		defer close(ended)
		time.Sleep(lag) // the marker arrives
		if err := prev.EndTransaction(context.Background(), kgo.TryCommit); err != nil {
			t.Error(err)
		}
		committing.Store(false)
	}()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tbl.WaitRestored(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < lag {
		t.Fatalf("restored in %v, before the committing transaction's marker", took)
	}
	for _, k := range []string{"before", "last"} {
		if _, ok, err := tbl.Get(0, []byte(k)); err != nil || !ok {
			t.Fatalf("key %q committed before the handoff: found=%v err=%v", k, ok, err)
		}
	}
}

// TestRestoreDoesNotWaitForAnOpenTransaction: a transaction open but not
// committing (a fenced zombie's, or one of a crashed worker that only its
// timeout will abort) does not hold the partition back.
func TestRestoreDoesNotWaitForAnOpenTransaction(t *testing.T) {
	opts := cluster(t, 1)
	now := time.Now().UnixMilli()
	txnProduce(t, opts, true, rec(0, "before", now))
	zombie := openTxn(t, opts, "zombie", rec(0, "never", now+1))
	store := openStore(t, t.TempDir())
	defer store.Close()
	tbl := NewTable(store, &Changelog{Topic: topic, ClientOpts: opts}, TableOpts{Logger: quiet()})
	defer tbl.Close()
	tbl.Assign([]int32{0}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tbl.WaitRestored(ctx, 0); err != nil {
		t.Fatalf("held back by an open transaction: %v", err)
	}
	if _, ok, _ := tbl.Get(0, []byte("before")); !ok {
		t.Fatal("committed key missing")
	}
	if _, ok, _ := tbl.Get(0, []byte("never")); ok {
		t.Fatal("a key of an open transaction was restored")
	}
	if err := zombie.EndTransaction(context.Background(), kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreCatchesUpWithACommitAfterItsListing: the previous owner's last
// transaction commits after the restore listed the changelog's end but
// before the first record: the table reads it before that record.
func TestRestoreCatchesUpWithACommitAfterItsListing(t *testing.T) {
	opts := cluster(t, 1)
	now := time.Now().UnixMilli()
	prev := openTxn(t, opts, "previous-owner", rec(0, "last", now))
	store := openStore(t, t.TempDir())
	defer store.Close()
	tbl := NewTable(store, &Changelog{Topic: topic, ClientOpts: opts}, TableOpts{Logger: quiet()})
	defer tbl.Close()
	tbl.Assign([]int32{0}, nil, nil)
	for deadline := time.Now().Add(10 * time.Second); tbl.Status()[0].Status != Restored; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not restored: %+v", tbl.Status()[0])
		}
	}
	if err := prev.EndTransaction(context.Background(), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tbl.WaitRestored(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := tbl.Get(0, []byte("last")); err != nil || !ok {
		t.Fatalf("key committed before the first record: found=%v err=%v", ok, err)
	}
}

// TestRestoreKeepsItsOwnCommitAboveALaggingMarker: a worker's own commit is
// applied to the store at once, so its checkpoint is above the last stable
// offset until the marker arrives. A restore then (an abort's re-restore,
// a restart) must not take the store for one of a recreated topic and
// wipe it, losing that commit.
func TestRestoreKeepsItsOwnCommitAboveALaggingMarker(t *testing.T) {
	c, opts := fakeCluster(t, 1)
	now := time.Now().UnixMilli()
	txnProduce(t, opts, true, rec(0, "before", now))
	cl := &Changelog{Topic: topic, ClientOpts: opts}
	store := openStore(t, t.TempDir())
	defer store.Close()
	if _, err := cl.Restore(context.Background(), store, 0, nil); err != nil {
		t.Fatal(err)
	}
	cp, _, _ := store.Checkpoint(0)
	// The worker's commit from cp.Next on, applied with its offsets.
	txnProduce(t, opts, true, rec(0, "own", now+1))
	if err := store.Apply(0, []Put{{Key: []byte("own"), Value: []byte("v-own"), TS: now + 1}}, Checkpoint{Next: cp.Next + 1, StreamTime: now + 1}); err != nil {
		t.Fatal(err)
	}
	// Its marker has not reached the partition: the last stable offset is
	// still its first offset.
	c.ControlKey(int16(kmsg.ListOffsets), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ListOffsetsRequest)
		if req.IsolationLevel != 1 {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition, sp.Offset, sp.LeaderEpoch = rp.Partition, cp.Next, rp.CurrentLeaderEpoch
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	if _, err := cl.Restore(context.Background(), store, 0, nil); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"before", "own"} {
		if _, ok, err := store.Get(0, []byte(k)); err != nil || !ok {
			t.Fatalf("key %q after a restore below the worker's own commit: found=%v err=%v", k, ok, err)
		}
	}
}

// TestSettleGoesOnWithoutABrokerThatDoesNotAnswer: ListTransactions goes to
// every broker. One that fails holds a partition with an open transaction
// back only briefly, not for as long as it fails.
func TestSettleGoesOnWithoutABrokerThatDoesNotAnswer(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	now := time.Now().UnixMilli()
	txnProduce(t, opts, true, rec(0, "before", now))
	openTxn(t, opts, "zombie", rec(0, "never", now+1))
	c.ControlKey(int16(kmsg.ListTransactions), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if c.CurrentNode() != 1 {
			return nil, nil, false
		}
		resp := kreq.(*kmsg.ListTransactionsRequest).ResponseKind().(*kmsg.ListTransactionsResponse)
		resp.ErrorCode = kerr.UnknownServerError.Code
		return resp, nil, true
	})
	store := openStore(t, t.TempDir())
	defer store.Close()
	const partialAfter = 300 * time.Millisecond
	tbl := NewTable(store, &Changelog{Topic: topic, ClientOpts: opts, partialAfter: partialAfter}, TableOpts{Logger: quiet()})
	defer tbl.Close()
	tbl.Assign([]int32{0}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := tbl.WaitRestored(ctx, 0); err != nil {
		t.Fatalf("held back by a broker that does not answer: %v", err)
	}
	if took := time.Since(start); took < partialAfter {
		t.Fatalf("settled in %v without waiting for the broker that failed", took)
	}
	if _, ok, _ := tbl.Get(0, []byte("before")); !ok {
		t.Fatal("committed key missing")
	}
}

// TestReadyReportsAPartitionHeldBack: a partition restored but unable to
// settle (here the leader refuses DescribeProducers) is not processed, and
// Ready says so until it settles.
func TestReadyReportsAPartitionHeldBack(t *testing.T) {
	c, opts := fakeCluster(t, 1)
	var refuse atomic.Bool
	refuse.Store(true)
	c.ControlKey(int16(kmsg.DescribeProducers), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !refuse.Load() {
			return nil, nil, false
		}
		req := kreq.(*kmsg.DescribeProducersRequest)
		resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewDescribeProducersResponseTopic()
			st.Topic = rt.Topic
			for _, p := range rt.Partitions {
				sp := kmsg.NewDescribeProducersResponseTopicPartition()
				sp.Partition, sp.ErrorCode = p, kerr.UnknownServerError.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	store := openStore(t, t.TempDir())
	defer store.Close()
	tbl := NewTable(store, &Changelog{Topic: topic, ClientOpts: opts}, TableOpts{Logger: quiet()})
	defer tbl.Close()
	tbl.Assign([]int32{0}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	settled := make(chan error, 1)
	go func() { settled <- tbl.WaitRestored(ctx, 0) }()
	for err := tbl.Ready(); err == nil || !strings.Contains(err.Error(), "held back"); err = tbl.Ready() {
		select {
		case err := <-settled:
			t.Fatalf("settled while DescribeProducers fails: %v", err)
		case <-ctx.Done():
			t.Fatal("Ready never reported the partition held back")
		case <-time.After(50 * time.Millisecond):
		}
	}
	refuse.Store(false)
	if err := <-settled; err != nil {
		t.Fatal(err)
	}
	if err := tbl.Ready(); err != nil {
		t.Fatalf("settled, but Ready = %v", err)
	}
}
