package kafkax

import (
	"context"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OpenAbort is a transaction that was aborted without an abort marker and
// is still the last thing its producer wrote to a partition.
type OpenAbort struct {
	Partition  int32
	ProducerID int64
	Epoch      int16
}

// MarkerlessAborts scans topic read_committed from its log start to its
// last stable offset and returns the aborted transactions that no control
// record ends. A broker that recovers from a crash (kfake on its data dir)
// aborts the transactions that were open without writing markers; clients'
// read_committed filters then also drop that producer's next committed
// transaction. Writing the missing markers (WriteAbortMarkers) before the
// producer writes again closes the range.
func MarkerlessAborts(ctx context.Context, cl *kgo.Client, topic string) ([]OpenAbort, error) {
	sc, err := ScanTransactions(ctx, cl, topic)
	return sc.Open, err
}

// ProducerEpoch names one transaction of a producer: with EndTxn v5
// (KIP-890) every transaction ends with its own epoch.
type ProducerEpoch struct {
	ProducerID int64
	Epoch      int16
}

// TxnScan is what a scan of a topic's committed range found about its
// transactions.
type TxnScan struct {
	// Open are the aborted transactions no control record ends
	// (MarkerlessAborts).
	Open []OpenAbort
	// Committed holds every producer epoch that wrote a COMMIT marker.
	Committed map[ProducerEpoch]bool
}

// ScanTransactions scans topic read_committed from its log start to its
// last stable offset, like MarkerlessAborts, and also collects the commit
// markers, so a caller can tell whether a transaction's commit reached
// the topic.
func ScanTransactions(ctx context.Context, cl *kgo.Client, topic string) (TxnScan, error) {
	out := TxnScan{Committed: map[ProducerEpoch]bool{}}
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return out, fmt.Errorf("listing start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return out, fmt.Errorf("listing stable offsets of %s: %w", topic, err)
	}
	from, to := map[int32]int64{}, map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			return
		}
		to[o.Partition] = o.Offset
		if s, ok := starts.Lookup(topic, o.Partition); ok && s.Err == nil {
			from[o.Partition] = s.Offset
		}
	})
	filters, err := scan(ctx, cl, topic, from, to, func(*kgo.Record) error { return nil }, nil, scanReuse)
	if err != nil {
		return out, err
	}
	for p, f := range filters {
		for pid, ep := range f.open {
			out.Open = append(out.Open, OpenAbort{Partition: p, ProducerID: pid, Epoch: ep})
		}
		for pe := range f.commits {
			out.Committed[pe] = true
		}
	}
	o := out.Open
	sort.Slice(o, func(i, j int) bool {
		if o[i].Partition != o[j].Partition {
			return o[i].Partition < o[j].Partition
		}
		return o[i].ProducerID < o[j].ProducerID
	})
	return out, nil
}

// WriteAbortMarkers writes an abort marker for each open abort of topic,
// through the partition leaders (WriteTxnMarkers, which needs the
// ClusterAction permission on a secured cluster).
func WriteAbortMarkers(ctx context.Context, cl *kgo.Client, topic string, aborts []OpenAbort) error {
	if len(aborts) == 0 {
		return nil
	}
	leaders, _, err := partitionLeaders(ctx, kadm.NewClient(cl), topic)
	if err != nil {
		return err
	}
	for _, a := range aborts {
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		m := kmsg.NewWriteTxnMarkersRequestMarker()
		m.ProducerID, m.ProducerEpoch, m.Committed = a.ProducerID, a.Epoch, false
		mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		mt.Topic, mt.Partitions = topic, []int32{a.Partition}
		m.Topics = append(m.Topics, mt)
		req.Markers = append(req.Markers, m)
		resp, err := req.RequestWith(ctx, cl.Broker(int(leaders[a.Partition])))
		if err != nil {
			return fmt.Errorf("writing abort marker for producer %d on %s[%d]: %w", a.ProducerID, topic, a.Partition, err)
		}
		for _, rm := range resp.Markers {
			for _, rt := range rm.Topics {
				for _, rp := range rt.Partitions {
					if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
						return fmt.Errorf("writing abort marker for producer %d on %s[%d]: %w", a.ProducerID, topic, a.Partition, err)
					}
				}
			}
		}
	}
	return nil
}
