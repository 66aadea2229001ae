package eos

import (
	"context"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// OutcomeOf exposes decideOutcome to the external tests: whether the
// transaction (pid, epoch) committed on topics, with its marker's epoch.
func OutcomeOf(ctx context.Context, opts []kgo.Opt, topics []string, pid int64, epoch int16) (commit bool, markerEpoch int16, err error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return false, 0, err
	}
	defer cl.Close()
	m, err := decideOutcome(ctx, kadm.NewClient(cl), opts, topics, pid, epoch)
	return m.commit, m.epoch, err
}

// ErrUndetermined is errUndetermined, for errors.Is in the tests.
var ErrUndetermined = errUndetermined

// DecisionFromTxnLog exposes decisionFromTxnLog: the coordinator's own
// decision for transaction (pid, epoch) naming topic-partition.
func DecisionFromTxnLog(ctx context.Context, opts []kgo.Opt, txnID string, pid int64, epoch int16, topic string, partition int32) (found, commit bool, markerEpoch int16, err error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return false, false, 0, err
	}
	defer cl.Close()
	d, found, err := decisionFromTxnLog(ctx, kadm.NewClient(cl), opts, txnID, pid, epoch, kadm.TopicsSet{topic: {partition: {}}})
	return found, d.marker.commit, d.marker.epoch, err
}

// TxnLogPartition exposes txnLogPartition.
var TxnLogPartition = txnLogPartition

// FindHanging exposes findHanging: how many hanging transactions of txnID
// __consumer_offsets holds.
func FindHanging(ctx context.Context, opts []kgo.Opt, txnID string) (int, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	hs, err := findHanging(ctx, kadm.NewClient(cl), txnID)
	return len(hs), err
}
