package devstack

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pcistream/pcistream/internal/kafkax"
)

// repairCrash runs when the broker starts on a data dir a crash left
// behind, and finishes what kfake's own recovery leaves undone:
//
//   - kfake aborts the transactions that were open at the crash but writes
//     no abort markers; read_committed clients (franz-go's included) then
//     also drop the next committed transaction of the same producer, and a
//     restore that waits for the record at the last stable offset never
//     ends. repairCrash writes the missing abort markers.
//   - a crash inside a committing EndTxn can leave the commit markers
//     written and the transaction's group offsets lost (see txnJournal).
//     repairCrash applies the journaled offsets of every transaction whose
//     COMMIT marker is in the log, as Kafka's coordinator completes a
//     PREPARE_COMMIT it finds when loading its log, unless the crash came
//     between two of its partitions' markers (kfake aborted the rest; see
//     rollForward).
//
// Until then the coordinators answer COORDINATOR_LOAD_IN_PROGRESS
// (retriable, as a real broker loading its logs does) to InitProducerID,
// OffsetFetch, TxnOffsetCommit and EndTxn, so no producer writes and no
// consumer reads its position before the repair.
func (s *Stack) repairCrash(ctx context.Context, c *kfake.Cluster, j *txnJournal) (aborted, rolled int, err error) {
	var repairing atomic.Bool
	repairing.Store(true)
	defer repairing.Store(false)
	for _, k := range []kmsg.Key{kmsg.InitProducerID, kmsg.OffsetFetch, kmsg.TxnOffsetCommit, kmsg.EndTxn} {
		c.ControlKey(int16(k), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
			if !repairing.Load() {
				c.DropControl()
				return nil, nil, false
			}
			c.KeepControl()
			return loadingResponse(kreq), nil, true
		})
	}

	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("devstack: listing topics for crash repair: %w", err)
	}
	committed := map[kafkax.ProducerEpoch]bool{}
	open := map[kafkax.ProducerEpoch]bool{}
	for _, t := range td.Names() {
		sc, err := kafkax.ScanTransactions(ctx, cl, t)
		if err != nil {
			return aborted, 0, fmt.Errorf("devstack: scanning %s for transactions a crash left open: %w", t, err)
		}
		if err := kafkax.WriteAbortMarkers(ctx, cl, t, sc.Open); err != nil {
			return aborted, 0, fmt.Errorf("devstack: closing transactions a crash left open: %w", err)
		}
		aborted += len(sc.Open)
		for pe := range sc.Committed {
			committed[pe] = true
		}
		for _, o := range sc.Open {
			open[kafkax.ProducerEpoch{ProducerID: o.ProducerID, Epoch: o.Epoch}] = true
		}
	}
	rolled, err = s.rollForward(ctx, c, kadm.NewClient(cl), j, committed, open)
	return aborted, rolled, err
}

// rollForward applies the journaled offsets of the transactions whose
// commit markers reached the log, where kfake's group state is behind
// them (never moving a committed offset back), and empties the journal.
func (s *Stack) rollForward(ctx context.Context, c *kfake.Cluster, adm *kadm.Client, j *txnJournal,
	committed, open map[kafkax.ProducerEpoch]bool) (int, error) {
	recs, err := readJournal(j.path)
	if err != nil {
		return 0, err
	}
	rolled := 0
	for _, r := range recs {
		pe := kafkax.ProducerEpoch{ProducerID: r.PID, Epoch: r.Epoch}
		if !committed[pe] {
			continue // aborted, or the crash came before its markers: kfake aborted it
		}
		if open[pe] {
			// The crash came between two partitions' markers and kfake
			// aborted the rest: completing the offsets would lose those
			// outputs; leaving them makes the worker redo the batch, and
			// the outputs that did commit are duplicated. Duplicates over
			// loss.
			fmt.Fprintf(s.cfg.logger, "devstack: transaction %q was half committed by the crash (kfake aborted the partitions that had no marker yet); its offsets stay behind, so its committed outputs will be duplicated\n", r.TxnID)
			continue
		}
		byGroup := map[string]kadm.Offsets{}
		for _, o := range r.Offsets {
			if o.Topic == "" { // TxnOffsetCommit v6+ names topics by id
				ti := c.TopicIDInfo(o.TopicID)
				if ti == nil {
					continue // the topic is gone
				}
				o.Topic = ti.Topic
			}
			if gi := c.GroupInfo(o.Group); gi != nil {
				if cur, ok := gi.Commits[o.Topic][o.Partition]; ok && cur.Offset >= o.Offset {
					continue
				}
			}
			meta := ""
			if o.Metadata != nil {
				meta = *o.Metadata
			}
			offs := byGroup[o.Group]
			offs.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset,
				LeaderEpoch: o.LeaderEpoch, Metadata: meta})
			byGroup[o.Group] = offs
		}
		for g, offs := range byGroup {
			resp, err := adm.CommitOffsets(ctx, g, offs)
			if err == nil {
				err = resp.Error()
			}
			if err != nil {
				return rolled, fmt.Errorf("devstack: completing the offsets of transaction %q a crash interrupted (group %s): %w", r.TxnID, g, err)
			}
		}
		if len(byGroup) > 0 {
			rolled++
		}
	}
	return rolled, j.reset()
}

// loadingResponse answers kreq with COORDINATOR_LOAD_IN_PROGRESS.
func loadingResponse(kreq kmsg.Request) kmsg.Response {
	code := kerr.CoordinatorLoadInProgress.Code
	switch req := kreq.(type) {
	case *kmsg.InitProducerIDRequest:
		resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.EndTxnRequest:
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.OffsetFetchRequest:
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.ErrorCode = code
		for _, g := range req.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group, rg.ErrorCode = g.Group, code
			resp.Groups = append(resp.Groups, rg)
		}
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.ErrorCode = p, -1, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	case *kmsg.TxnOffsetCommitRequest:
		resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		for _, t := range req.Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	return nil
}
