package eos

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// txnMarker is a transaction's end as a partition holds it: the control
// record the transaction coordinator wrote there.
type txnMarker struct {
	commit     bool
	epoch      int16 // the control batch's producer epoch
	coordEpoch int32 // the coordinator epoch in the marker's value
}

// parseMarker decodes a control record (read with KeepControlRecords):
// key = version int16, type int16 (0 abort, 1 commit); value = version
// int16, coordinator epoch int32. It reports false for anything else
// (a data record, another control type, a short key).
func parseMarker(r *kgo.Record) (txnMarker, bool) {
	if !r.Attrs.IsControl() || len(r.Key) < 4 || len(r.Value) < 6 {
		return txnMarker{}, false
	}
	typ := int16(binary.BigEndian.Uint16(r.Key[2:4]))
	if typ != 0 && typ != 1 {
		return txnMarker{}, false
	}
	return txnMarker{commit: typ == 1, epoch: r.ProducerEpoch, coordEpoch: int32(binary.BigEndian.Uint32(r.Value[2:6]))}, true
}

// errUndetermined says a partition's log does not settle a transaction's
// outcome; the caller fails closed.
var errUndetermined = errors.New("outcome not determined")

// scanResult is what one window of a partition says about transaction
// (pid, epoch).
type scanResult struct {
	marker  txnMarker
	found   bool  // a data record of the transaction, then its marker
	minSeen int16 // the lowest epoch of pid in the window; -1 if none
}

// outcomeIn reads [from, end) of one partition, read_uncommitted with the
// control records, and looks for the transaction of producer pid at epoch:
// its data records, then the producer's next control record. Under
// transaction version 2 every transaction has its own epoch and the
// coordinator ends it with markers at epoch+1, so that pair is this
// transaction's outcome and nothing else's. A marker at another epoch (a
// version 1 transaction, whose epoch many transactions share) or data
// without a marker up to end is errUndetermined.
func outcomeIn(ctx context.Context, opts []kgo.Opt, topic string, p int32, from, end int64, pid int64, epoch int16) (scanResult, error) {
	res := scanResult{minSeen: -1}
	sawData := false
	var verdict error
	err := readRange(ctx, opts, topic, p, from, end, func(r *kgo.Record) bool {
		if r.ProducerID != pid {
			return true
		}
		if res.minSeen < 0 || r.ProducerEpoch < res.minSeen {
			res.minSeen = r.ProducerEpoch
		}
		m, isMarker := parseMarker(r)
		switch {
		case !r.Attrs.IsControl() && r.ProducerEpoch == epoch:
			sawData = true
		case isMarker && sawData && m.epoch == epoch+1:
			res.marker, res.found = m, true
			return false
		case isMarker && sawData:
			verdict = fmt.Errorf("%s-%d: producer %d epoch %d ended by a marker at epoch %d, not %d (transaction version 1?): %w",
				topic, p, pid, epoch, m.epoch, epoch+1, errUndetermined)
			return false
		}
		return true
	})
	switch {
	case err != nil:
		return res, err
	case verdict != nil:
		return res, verdict
	case sawData && !res.found:
		return res, fmt.Errorf("%s-%d: producer %d epoch %d has records but no marker up to offset %d: %w", topic, p, pid, epoch, end, errUndetermined)
	}
	return res, nil
}

// pollSome polls once, giving up after pollWait without records.
func pollSome(ctx context.Context, cl *kgo.Client) (kgo.Fetches, error) {
	pctx, cancel := context.WithTimeout(ctx, pollWait)
	defer cancel()
	fs := cl.PollFetches(pctx)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, fe := range fs.Errors() {
		if !errors.Is(fe.Err, context.DeadlineExceeded) {
			return nil, fe.Err
		}
	}
	return fs, nil
}

// pollWait is how long outcomeIn waits for records it knows exist.
const pollWait = 10 * time.Second

// Read windows: outcomeOn starts with firstWindow offsets back from the
// high watermark and doubles up to maxWindow on a partition the producer
// is known to have reached, or up to blindWindow on one it is not known
// to have (a broker whose DescribeProducers lists only producers inside a
// transaction, as kfake's).
const (
	firstWindow = 4096
	maxWindow   = 1 << 22
	blindWindow = 1 << 16
)

// outcomeOn finds the marker of transaction (pid, epoch) on one partition,
// reading back from its high watermark in doubling windows up to limit: a
// producer's epochs only grow along a partition, so once the window holds
// a record of pid at a lower epoch, a transaction at epoch that is not in
// it is not on the partition at all. It reports found=false when the
// transaction did not write there, and exhausted=true when limit was
// reached without knowing.
func outcomeOn(ctx context.Context, opts []kgo.Opt, topic string, p int32, start, end, limit int64, pid int64, epoch int16) (m txnMarker, found, exhausted bool, err error) {
	for w := int64(firstWindow); ; w *= 2 {
		from := max(start, end-w)
		res, err := outcomeIn(ctx, opts, topic, p, from, end, pid, epoch)
		switch {
		case err != nil:
			return txnMarker{}, false, false, err
		case res.found:
			return res.marker, true, false, nil
		case from == start || (res.minSeen >= 0 && res.minSeen < epoch):
			return txnMarker{}, false, false, nil
		case w >= limit:
			return txnMarker{}, false, true, nil
		}
	}
}

// decideOutcome settles transaction (pid, epoch) from the partitions of
// topics it wrote: the coordinator writes the same marker to every
// partition of a transaction, so the marker found on one output partition
// is the outcome the offsets partition is missing. It reads the partitions
// where DescribeProducers shows the producer at epoch or later, or, when it
// shows it nowhere, the last blindWindow offsets of every partition. It
// fails with errUndetermined when no partition holds the transaction, two
// disagree, or one known to hold it is too long to read.
func decideOutcome(ctx context.Context, adm *kadm.Client, opts []kgo.Opt, topics []string, pid int64, epoch int16) (txnMarker, error) {
	if len(topics) == 0 {
		return txnMarker{}, fmt.Errorf("no output topics known: %w", errUndetermined)
	}
	parts, limit, err := candidates(ctx, adm, topics, pid, epoch)
	if err != nil {
		return txnMarker{}, err
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return txnMarker{}, fmt.Errorf("list start offsets of %v: %w", topics, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return txnMarker{}, fmt.Errorf("list end offsets of %v: %w", topics, err)
	}
	var got []txnMarker
	for t, ps := range parts {
		for p := range ps {
			s, _ := starts.Lookup(t, p)
			e, _ := ends.Lookup(t, p)
			if s.Err != nil || e.Err != nil {
				return txnMarker{}, fmt.Errorf("offsets of %s-%d: %w", t, p, errors.Join(s.Err, e.Err))
			}
			m, found, exhausted, err := outcomeOn(ctx, opts, t, p, s.Offset, e.Offset, limit, pid, epoch)
			switch {
			case err != nil:
				return txnMarker{}, err
			case exhausted && limit == maxWindow:
				return txnMarker{}, fmt.Errorf("%s-%d: no record of producer %d epoch %d in its last %d offsets: %w", t, p, pid, epoch, limit, errUndetermined)
			case found:
				got = append(got, m)
			}
		}
	}
	return agree(got, pid, epoch)
}

// candidates returns the partitions of topics to read, and how far back.
func candidates(ctx context.Context, adm *kadm.Client, topics []string, pid int64, epoch int16) (kadm.TopicsSet, int64, error) {
	set := kadm.TopicsSet{}
	for _, t := range topics {
		set[t] = map[int32]struct{}{}
	}
	prods, err := adm.DescribeProducers(ctx, set)
	if err != nil {
		return nil, 0, fmt.Errorf("describe producers of %v: %w", topics, err)
	}
	var errs []error
	known := kadm.TopicsSet{}
	all := kadm.TopicsSet{}
	prods.EachPartition(func(dp kadm.DescribedProducersPartition) {
		if dp.Err != nil {
			errs = append(errs, fmt.Errorf("%s-%d: %w", dp.Topic, dp.Partition, dp.Err))
		}
		all.Add(dp.Topic, dp.Partition)
		if reached(dp, pid, epoch) {
			known.Add(dp.Topic, dp.Partition)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, 0, fmt.Errorf("describe producers of %v: %w", topics, err)
	}
	if len(known) > 0 {
		return known, maxWindow, nil
	}
	return all, blindWindow, nil
}

// reached reports whether pid wrote to the described partition at epoch
// or later: only then can the partition hold the transaction at epoch.
func reached(dp kadm.DescribedProducersPartition, pid int64, epoch int16) bool {
	for _, pr := range dp.ActiveProducers {
		if pr.ProducerID == pid && pr.ProducerEpoch >= epoch {
			return true
		}
	}
	return false
}

// agree returns the one marker every partition holds, or errUndetermined.
func agree(got []txnMarker, pid int64, epoch int16) (txnMarker, error) {
	if len(got) == 0 {
		return txnMarker{}, fmt.Errorf("no output partition holds producer %d epoch %d: %w", pid, epoch, errUndetermined)
	}
	for _, m := range got[1:] {
		if m.commit != got[0].commit {
			return txnMarker{}, fmt.Errorf("output partitions disagree on producer %d epoch %d (commit and abort markers): %w", pid, epoch, errUndetermined)
		}
	}
	return got[0], nil
}
