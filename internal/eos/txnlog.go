package eos

import (
	"context"
	"fmt"
	"unicode/utf16"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnStateTopic is the transaction coordinator's log: one record per state
// change of each transactional id, keyed by it.
const txnStateTopic = "__transaction_state"

// decision is how a transaction ended and where its markers belong.
type decision struct {
	marker     txnMarker
	partitions kadm.TopicsSet // every partition of the transaction
	source     string         // where it was read, for the log
}

// txnLogPartition is the __transaction_state partition of a transactional
// id: Kafka's Utils.abs(id.hashCode()) % partitions, with Java's String
// hash over UTF-16 code units.
func txnLogPartition(id string, partitions int32) int32 {
	var h int32
	for _, c := range utf16.Encode([]rune(id)) {
		h = 31*h + int32(c)
	}
	if h < 0 {
		h = -h // Kafka's Utils.abs; MinInt32 stays negative there too
		if h < 0 {
			h = 0
		}
	}
	return h % partitions
}

// txnMetadata decodes rec as a __transaction_state record of txnID; ok is
// false for a tombstone or another transactional id's record.
func txnMetadata(rec *kgo.Record, txnID string) (v kmsg.TxnMetadataValue, ok bool) {
	var k kmsg.TxnMetadataKey
	if rec.Value == nil || k.ReadFrom(rec.Key) != nil || k.TransactionalID != txnID || v.ReadFrom(rec.Value) != nil {
		return v, false
	}
	return v, true
}

// prepared is the PrepareCommit or PrepareAbort record the coordinator
// wrote for transaction (pid, epoch) before any of its markers, read from
// v (a __transaction_state record's value); ok is false for any other
// record. Under transaction version 2 the prepare record carries epoch+1,
// the markers' epoch; under version 1 the transaction's own.
func prepared(v *kmsg.TxnMetadataValue, pid int64, epoch int16) (d decision, ok bool) {
	if v.ProducerID != pid || (v.ProducerEpoch != epoch && v.ProducerEpoch != epoch+1) ||
		(v.State != kmsg.TransactionStatePrepareCommit && v.State != kmsg.TransactionStatePrepareAbort) {
		return d, false
	}
	d.marker = txnMarker{commit: v.State == kmsg.TransactionStatePrepareCommit, epoch: v.ProducerEpoch}
	d.partitions = kadm.TopicsSet{}
	for _, t := range v.Topics {
		d.partitions.Add(t.Topic, t.Partitions...)
	}
	return d, true
}

// decisionFromTxnLog reads the coordinator's own decision for transaction
// (pid, epoch) of txnID from the tail of its __transaction_state partition:
// the last prepare record of that transaction whose partitions include
// part. It is the exact outcome, for every partition of the transaction,
// as long as compaction has not removed the record yet (it is superseded by
// the records that follow, and only closed segments are compacted). found
// is false when the record is not there (or the topic cannot be read).
func decisionFromTxnLog(ctx context.Context, adm *kadm.Client, opts []kgo.Opt, txnID string, pid int64, epoch int16, part kadm.TopicsSet) (d decision, found bool, err error) {
	md, err := adm.Metadata(ctx, txnStateTopic)
	if err != nil {
		return d, false, fmt.Errorf("metadata of %s: %w", txnStateTopic, err)
	}
	td, ok := md.Topics[txnStateTopic]
	if !ok || td.Err != nil || len(td.Partitions) == 0 {
		return d, false, nil // no such topic (kfake) or not ours to read
	}
	p := txnLogPartition(txnID, int32(len(td.Partitions)))
	ends, err := adm.ListEndOffsets(ctx, txnStateTopic)
	if err != nil {
		return d, false, fmt.Errorf("end offsets of %s: %w", txnStateTopic, err)
	}
	end, _ := ends.Lookup(txnStateTopic, p)
	starts, err := adm.ListStartOffsets(ctx, txnStateTopic)
	if err != nil {
		return d, false, fmt.Errorf("start offsets of %s: %w", txnStateTopic, err)
	}
	start, _ := starts.Lookup(txnStateTopic, p)
	if end.Err != nil || start.Err != nil {
		return d, false, nil
	}
	for w := int64(firstWindow); ; w *= 2 {
		from := max(start.Offset, end.Offset-w)
		var older bool
		d, found, older, err = lastPrepared(ctx, opts, p, from, end.Offset, txnID, pid, epoch, part)
		if err != nil || found || older || from == start.Offset || w >= maxWindow {
			d.marker.coordEpoch = td.Partitions[p].LeaderEpoch
			d.source = fmt.Sprintf("%s-%d", txnStateTopic, p)
			return d, found, err
		}
	}
}

// lastPrepared scans [from, end) of __transaction_state partition p for the
// last prepare record of (pid, epoch) that names part; older reports a
// record of txnID from before that transaction (no need to read further
// back).
func lastPrepared(ctx context.Context, opts []kgo.Opt, p int32, from, end int64, txnID string, pid int64, epoch int16, part kadm.TopicsSet) (d decision, found, older bool, err error) {
	err = readRange(ctx, opts, txnStateTopic, p, from, end, func(r *kgo.Record) bool {
		v, ok := txnMetadata(r, txnID)
		if !ok {
			return true
		}
		if got, ok := prepared(&v, pid, epoch); ok && contains(got.partitions, part) {
			d, found = got, true
		} else if v.ProducerID == pid && v.ProducerEpoch < epoch {
			older = true // a record of txnID from before that transaction
		}
		return true
	})
	return d, found, older, err
}

// contains reports whether every partition of sub is in set.
func contains(set, sub kadm.TopicsSet) bool {
	for t, ps := range sub {
		for p := range ps {
			if _, ok := set[t][p]; !ok {
				return false
			}
		}
	}
	return true
}

// readRange calls fn for each record of [from, end) of one partition, in
// order, until fn returns false: read uncommitted and with the control
// records (the transaction markers), so that every transaction shows.
func readRange(ctx context.Context, opts []kgo.Opt, topic string, p int32, from, end int64, fn func(*kgo.Record) bool) error {
	if from >= end {
		return nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		return fmt.Errorf("read %s-%d: %w", topic, p, err)
	}
	defer cl.Close()
	for next := from; next < end; {
		fs, err := pollSome(ctx, cl)
		if err != nil {
			return fmt.Errorf("read %s-%d up to %d (at %d): %w", topic, p, end, next, err)
		}
		if fs.NumRecords() == 0 {
			return nil // the offsets left are gone (compacted or deleted)
		}
		for it := fs.RecordIter(); !it.Done(); {
			r := it.Next()
			next = r.Offset + 1
			if r.Offset < end && !fn(r) {
				return nil
			}
		}
	}
	return nil
}
