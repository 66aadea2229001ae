package eos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// offsetsTopic holds the groups' offsets and, until their transaction
// ends, the pending offsets of a TxnOffsetCommit.
const offsetsTopic = "__consumer_offsets"

// hangingTxn is a transaction of ours that a __consumer_offsets partition
// holds open although the transaction coordinator has finished with it: a
// "hanging transaction" (KIP-664). No marker will ever come for it, and
// every OffsetFetch with require_stable (franz-go always sets it) answers
// UNSTABLE_OFFSET_COMMIT for its partitions, so the worker never fetches.
// Seen on Apache Kafka 4.4.0 after a broker restart; see
// internal/devstack/kafkabroker/DIFFERENCES.md section 8.
type hangingTxn struct {
	partition int32 // of __consumer_offsets
	pid       int64
	epoch     int16 // of the transaction's records there
	start     int64 // its first offset there
}

// findHanging returns the open transactions of txnID's producer id on
// __consumer_offsets, if the coordinator holds none. It must run after
// InitProducerId, which completes any transaction of ours the coordinator
// still had (markers included), so that an open one left is hanging.
func findHanging(ctx context.Context, adm *kadm.Client, txnID string) ([]hangingTxn, error) {
	txns, err := adm.DescribeTransactions(ctx, txnID)
	if err != nil {
		return nil, fmt.Errorf("describe transaction %q: %w", txnID, err)
	}
	txn, ok := txns[txnID]
	if !ok || txn.Err != nil {
		return nil, fmt.Errorf("describe transaction %q: %w", txnID, errors.Join(txn.Err, errors.New("not in the answer")))
	}
	switch txn.State {
	case "Empty", "CompleteCommit", "CompleteAbort":
	default:
		return nil, nil // the coordinator holds a transaction: its markers are its job
	}
	prods, err := adm.DescribeProducers(ctx, kadm.TopicsSet{offsetsTopic: {}})
	if err != nil {
		return nil, fmt.Errorf("describe producers of %s: %w", offsetsTopic, err)
	}
	var hs []hangingTxn
	prods.EachPartition(func(p kadm.DescribedProducersPartition) {
		for _, pr := range p.ActiveProducers {
			if pr.ProducerID == txn.ProducerID && pr.CurrentTxnStartOffset >= 0 {
				hs = append(hs, hangingTxn{partition: p.Partition, pid: pr.ProducerID, epoch: pr.ProducerEpoch, start: pr.CurrentTxnStartOffset})
			}
		}
	})
	return hs, nil
}

// endHanging writes the marker m, found on the transaction's output
// partitions, to the offsets partition that misses it, exactly as the
// coordinator would have (same type, producer epoch and coordinator epoch,
// transaction version 2). This needs the ClusterAction permission, as
// `kafka-transactions.sh abort` does.
func endHanging(ctx context.Context, cl *kgo.Client, h hangingTxn, m txnMarker) error {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	mk := kmsg.NewWriteTxnMarkersRequestMarker()
	mk.ProducerID, mk.ProducerEpoch, mk.Committed, mk.CoordinatorEpoch, mk.TransactionVersion = h.pid, m.epoch, m.commit, m.coordEpoch, 2
	t := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	t.Topic, t.Partitions = offsetsTopic, []int32{h.partition}
	mk.Topics = append(mk.Topics, t)
	req.Markers = append(req.Markers, mk)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("write the marker to %s-%d: %w", offsetsTopic, h.partition, err)
	}
	for _, rm := range resp.Markers {
		for _, rt := range rm.Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					return fmt.Errorf("write the marker to %s-%d (needs ClusterAction): %w", rt.Topic, rp.Partition, err)
				}
			}
		}
	}
	return nil
}

// operatorHelp is the one line an operator needs when the outcome cannot
// be read from the outputs: how to look, and how to abort. Kafka's tool
// has no commit; a transaction whose outputs hold its commit marker must
// not be aborted (its outputs would be processed again).
func operatorHelp(seeds []string, h hangingTxn) string {
	bs := strings.Join(seeds, ",")
	return fmt.Sprintf("kafka-transactions.sh --bootstrap-server %s describe-producers --topic %s --partition %d; "+
		"if no output partition holds a COMMIT marker of producer %d at epoch %d: "+
		"kafka-transactions.sh --bootstrap-server %s abort --topic %s --partition %d --start-offset %d",
		bs, offsetsTopic, h.partition, h.pid, h.epoch+1, bs, offsetsTopic, h.partition, h.start)
}

// settleHanging ends each hanging transaction of ours on __consumer_offsets
// with the outcome its output partitions hold (commit if they hold its
// commit marker, abort if its abort marker). When the outcome cannot be
// read it logs what the operator can do and returns an error: the session
// restarts and the worker stays not ready rather than guess (an abort of a
// committed transaction duplicates its outputs; a commit of an aborted one
// loses its inputs). A failing check (an old broker, no permission to
// describe __consumer_offsets) is logged and leaves the session running.
func (l *Loop) settleHanging(ctx context.Context, cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	adm := kadm.NewClient(cl)
	hs, err := findHanging(ctx, adm, l.cfg.txnID)
	if err != nil {
		l.log.Warn("could not check for a hanging transaction on the group's offsets", "err", err)
		return nil
	}
	for _, h := range hs {
		m, err := decideOutcome(ctx, adm, l.cfg.clientOpts, l.outputTopics(), h.pid, h.epoch)
		if errors.Is(err, errUndetermined) {
			l.reportUndetermined(cl, h, err)
		}
		if err != nil {
			return fmt.Errorf("hanging transaction of producer %d epoch %d on %s-%d: %w", h.pid, h.epoch, offsetsTopic, h.partition, err)
		}
		if err := endHanging(ctx, cl, h, m); err != nil {
			return fmt.Errorf("end the hanging transaction of producer %d epoch %d: %w", h.pid, h.epoch, err)
		}
		l.log.Warn("ended a hanging transaction the broker kept open on the group's offsets, with the outcome its outputs hold",
			"transactional_id", l.cfg.txnID, "producer_id", h.pid, "epoch", h.epoch, "partition", h.partition,
			"start_offset", h.start, "committed", m.commit)
	}
	return nil
}

// settleTimeout bounds settleHanging (reading the outputs back included).
const settleTimeout = 2 * time.Minute

// reportUndetermined logs the operator's commands once per hanging
// transaction (the session restarts with backoff while it stays).
func (l *Loop) reportUndetermined(cl *kgo.Client, h hangingTxn, err error) {
	l.mu.Lock()
	seen := l.reported == h
	l.reported = h
	l.mu.Unlock()
	if seen {
		return
	}
	var seeds []string
	for _, v := range cl.OptValues(kgo.SeedBrokers) {
		if s, ok := v.([]string); ok {
			seeds = append(seeds, s...)
		}
	}
	l.log.Error("a hanging transaction blocks the group's offsets and its outcome cannot be read from the outputs; not guessing, the input stays in Kafka",
		"err", err, "producer_id", h.pid, "epoch", h.epoch, "partition", h.partition, "operator", operatorHelp(seeds, h))
}

// outputTopics are the topics the loop's transactions write: those given
// with OutputTopics and those seen produced since the process started.
func (l *Loop) outputTopics() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := append([]string(nil), l.cfg.outputs...)
	for t := range l.produced {
		if !slices.Contains(ts, t) {
			ts = append(ts, t)
		}
	}
	return ts
}

// noteProduced records the topics a transaction wrote, for outputTopics.
func (l *Loop) noteProduced(topics map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.produced == nil {
		l.produced = map[string]struct{}{}
	}
	for t := range topics {
		l.produced[t] = struct{}{}
	}
}
