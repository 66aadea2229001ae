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

// endHanging writes marker m of producer pid to the partitions of targets,
// exactly as the coordinator would have (same type, producer epoch and
// coordinator epoch). This needs the ClusterAction permission, as
// `kafka-transactions.sh abort` does.
func endHanging(ctx context.Context, cl *kgo.Client, pid int64, epoch int16, m txnMarker, targets kadm.TopicsSet) error {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	mk := kmsg.NewWriteTxnMarkersRequestMarker()
	mk.ProducerID, mk.ProducerEpoch, mk.Committed, mk.CoordinatorEpoch = pid, m.epoch, m.commit, m.coordEpoch
	mk.TransactionVersion = 1
	if m.epoch > epoch {
		mk.TransactionVersion = 2 // the coordinator bumped the epoch for the markers
	}
	for t, ps := range targets {
		mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		mt.Topic = t
		for p := range ps {
			mt.Partitions = append(mt.Partitions, p)
		}
		mk.Topics = append(mk.Topics, mt)
	}
	req.Markers = append(req.Markers, mk)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("write the markers to %v: %w", targets, err)
	}
	var errs []error
	for _, rm := range resp.Markers {
		for _, rt := range rm.Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					errs = append(errs, fmt.Errorf("%s-%d: %w", rt.Topic, rp.Partition, err))
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("write the markers (needs ClusterAction): %w", err)
	}
	return nil
}

// openParts returns the partitions of set where transaction (pid, epoch)
// is still open: those that miss its marker (a partition that has it would
// refuse it again once a later transaction wrote there).
func openParts(ctx context.Context, adm *kadm.Client, set kadm.TopicsSet, pid int64, epoch int16) (kadm.TopicsSet, error) {
	prods, err := adm.DescribeProducers(ctx, set)
	if err != nil {
		return nil, fmt.Errorf("describe producers of %v: %w", set, err)
	}
	open := kadm.TopicsSet{}
	prods.EachPartition(func(dp kadm.DescribedProducersPartition) {
		for _, pr := range dp.ActiveProducers {
			if pr.ProducerID == pid && pr.ProducerEpoch == epoch && pr.CurrentTxnStartOffset >= 0 {
				open.Add(dp.Topic, dp.Partition)
			}
		}
	})
	return open, nil
}

// decide finds the outcome of hanging transaction h: from the coordinator's
// own prepare record when __transaction_state still has it (then for every
// partition of the transaction: the broker can drop the markers of all of
// them), else from the marker of the same transaction on the outputs.
func (l *Loop) decide(ctx context.Context, adm *kadm.Client, h hangingTxn) (decision, error) {
	part := kadm.TopicsSet{offsetsTopic: {h.partition: {}}}
	d, found, err := decisionFromTxnLog(ctx, adm, l.cfg.clientOpts, l.cfg.txnID, h.pid, h.epoch, part)
	if err != nil {
		l.log.Warn("could not read the transaction coordinator's log; reading the outputs' markers", "err", err)
	}
	if found {
		return d, nil
	}
	m, err := decideOutcome(ctx, adm, l.cfg.clientOpts, l.outputTopics(), h.pid, h.epoch)
	if err != nil {
		return decision{}, err
	}
	return decision{marker: m, partitions: part, source: "the outputs' markers"}, nil
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
// with the outcome the transaction coordinator had decided: its prepare
// record in __transaction_state (the markers then go to every partition of
// the transaction still missing one), else the marker of the same
// transaction on its output partitions. When neither says, it logs what the
// operator can do and returns an error: the session restarts and the worker
// stays not ready rather than guess (an abort of a committed transaction
// duplicates its outputs; a commit of an aborted one loses its inputs). A
// failing check (an old broker, no permission to describe
// __consumer_offsets) is logged and leaves the session running.
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
		if err := l.settle(ctx, cl, adm, h); err != nil {
			return fmt.Errorf("hanging transaction of producer %d epoch %d on %s-%d: %w", h.pid, h.epoch, offsetsTopic, h.partition, err)
		}
	}
	return nil
}

// settle decides and ends one hanging transaction.
func (l *Loop) settle(ctx context.Context, cl *kgo.Client, adm *kadm.Client, h hangingTxn) error {
	d, err := l.decide(ctx, adm, h)
	if errors.Is(err, errUndetermined) {
		l.reportUndetermined(cl, h, err)
	}
	if err != nil {
		return err
	}
	targets, err := openParts(ctx, adm, d.partitions, h.pid, h.epoch)
	if err != nil {
		return err
	}
	targets.Add(offsetsTopic, h.partition)
	if err := endHanging(ctx, cl, h.pid, h.epoch, d.marker, targets); err != nil {
		return err
	}
	l.log.Warn("ended a hanging transaction the broker kept open, with the outcome the coordinator had decided",
		"transactional_id", l.cfg.txnID, "producer_id", h.pid, "epoch", h.epoch, "committed", d.marker.commit,
		"read_from", d.source, "partitions", targets.Sorted())
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
