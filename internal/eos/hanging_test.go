package eos_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/eos"
)

// TestOutcomeFromMarkers checks the decision the hanging-transaction
// recovery takes (eos settleHanging): for a transaction (producer id,
// epoch) it must find that transaction's own marker on the output
// partitions, read back from the broker, and say commit or abort; for a
// transaction that never wrote there it must refuse to decide. Three
// transactions of one producer (commit, abort, commit) are written over two
// partitions, then more than the first read window (4,096 offsets per partition) of
// another producer's records, so the backward scan has to widen.
func TestOutcomeFromMarkers(t *testing.T) {
	out := devstacktest.Name(t, "out")
	devstacktest.CreateTopic(t, stack, out, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	txnID := devstacktest.Name(t, "txn")
	txn := devstacktest.Client(t, stack, kgo.TransactionalID(txnID), kgo.DefaultProduceTopic(out), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	type ended struct {
		pid    int64
		epoch  int16
		commit bool
	}
	var txns []ended
	for i, commit := range []bool{true, false, true} {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var r *kgo.Record
		for j := range 10 {
			res := txn.ProduceSync(ctx, &kgo.Record{Partition: int32(j % 2), Value: fmt.Appendf(nil, "txn %d record %d", i, j)})
			if err := res.FirstErr(); err != nil {
				t.Fatal(err)
			}
			r = res[0].Record
		}
		if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
		txns = append(txns, ended{r.ProducerID, r.ProducerEpoch, commit})
	}
	filler := devstacktest.Client(t, stack, kgo.DefaultProduceTopic(out), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for i := range 10000 {
		recs = append(recs, &kgo.Record{Partition: int32(i % 2), Value: []byte("filler")})
	}
	if err := filler.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	opts := devstacktest.Opts(stack)
	for i, e := range txns {
		commit, markerEpoch, err := eos.OutcomeOf(ctx, opts, []string{out}, e.pid, e.epoch)
		if stack.Cluster != nil {
			// kfake ends a transaction with markers at its own epoch, as
			// transaction version 1 does, where one epoch spans many
			// transactions: the recovery must refuse to decide.
			if !errors.Is(err, eos.ErrUndetermined) {
				t.Errorf("kfake, transaction %d (producer %d epoch %d): got commit=%v marker epoch %d err %v, want the undetermined error",
					i, e.pid, e.epoch, commit, markerEpoch, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("transaction %d (producer %d epoch %d): %v", i, e.pid, e.epoch, err)
		}
		if commit != e.commit || markerEpoch != e.epoch+1 {
			t.Errorf("transaction %d (producer %d epoch %d): read commit=%v at marker epoch %d, want commit=%v at %d",
				i, e.pid, e.epoch, commit, markerEpoch, e.commit, e.epoch+1)
		}
	}
	for i, e := range txns {
		found, commit, markerEpoch, err := eos.DecisionFromTxnLog(ctx, opts, txnID, e.pid, e.epoch, out, 1)
		switch {
		case err != nil:
			t.Fatalf("transaction %d: coordinator's log: %v", i, err)
		case stack.Cluster != nil && found:
			t.Errorf("kfake has no __transaction_state, yet transaction %d was found in it", i)
		case stack.Cluster == nil && (!found || commit != e.commit || markerEpoch != e.epoch+1):
			t.Errorf("transaction %d (producer %d epoch %d): coordinator's log says found=%v commit=%v epoch %d, want commit=%v at %d",
				i, e.pid, e.epoch, found, commit, markerEpoch, e.commit, e.epoch+1)
		}
	}
	// Nothing hangs after normal ends: the check must stay quiet (on kfake,
	// which has no __consumer_offsets topic, too).
	if n, err := eos.FindHanging(ctx, opts, txnID); err != nil || n != 0 {
		t.Errorf("after normal commits and aborts: %d hanging transactions found, err %v; want none", n, err)
	}
	last := txns[len(txns)-1]
	if _, _, err := eos.OutcomeOf(ctx, opts, []string{out}, last.pid, last.epoch+5); !errors.Is(err, eos.ErrUndetermined) {
		t.Errorf("a transaction that wrote nothing there: got %v, want the undetermined error", err)
	}
	t.Logf("transactions (producer, epoch, committed): %v", txns)
}

// TestTxnLogPartition checks the __transaction_state partition of a
// transactional id against Java's String.hashCode values (Kafka's
// Utils.abs(hash) % partitions), including a hash of Integer.MIN_VALUE.
func TestTxnLogPartition(t *testing.T) {
	for _, c := range []struct {
		id   string
		n    int32
		want int32
	}{
		{"", 50, 0},
		{"hello", 50, 99162322 % 50},
		{"Aa", 7, 2112 % 7},
		{"polygenelubricants", 50, 0}, // hashCode() == Integer.MIN_VALUE
		{"zzzzzzzz", 50, 12},          // hashCode() == -1910022912 (overflows int32)
	} {
		if got := eos.TxnLogPartition(c.id, c.n); got != c.want {
			t.Errorf("TxnLogPartition(%q, %d) = %d, want %d", c.id, c.n, got, c.want)
		}
	}
}
