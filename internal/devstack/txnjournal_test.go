package devstack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func txnOffsetCommit(txnID string, pid int64, epoch int16, offset int64) *kmsg.TxnOffsetCommitRequest {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = txnID, pid, epoch, "g"
	t := kmsg.NewTxnOffsetCommitRequestTopic()
	t.Topic = "in"
	p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	p.Partition, p.Offset = 0, offset
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	return req
}

func endTxn(txnID string, pid int64, epoch int16, commit bool) *kmsg.EndTxnRequest {
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = txnID, pid, epoch, commit
	return req
}

// TestTxnJournal: a record per committing EndTxn with staged offsets, none
// for an abort or a commit without offsets; the last record per
// transactional id wins; a torn last line is ignored; compaction keeps the
// same records.
func TestTxnJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kafka-txn", "prepared.log")
	j, err := openTxnJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	steps := []struct {
		stage  *kmsg.TxnOffsetCommitRequest
		end    *kmsg.EndTxnRequest
		record bool
	}{
		{txnOffsetCommit("a", 1, 0, 10), endTxn("a", 1, 0, true), true},
		{txnOffsetCommit("b", 2, 0, 20), endTxn("b", 2, 0, false), false}, // abort
		{nil, endTxn("b", 2, 1, true), false},                             // nothing staged
		{txnOffsetCommit("a", 1, 1, 15), endTxn("a", 1, 1, true), true},
		{txnOffsetCommit("b", 2, 2, 30), endTxn("b", 2, 2, true), true},
		{txnOffsetCommit("c", 3, 0, 5), endTxn("c", 3, 1, true), false}, // another epoch than staged
	}
	lines := 0
	for i, s := range steps {
		if s.stage != nil {
			j.stage(s.stage)
		}
		if err := j.prepare(s.end); err != nil {
			t.Fatal(err)
		}
		if s.record {
			lines++
		}
		raw, _ := os.ReadFile(path)
		if n := strings.Count(string(raw), "\n"); n != lines {
			t.Fatalf("after step %d: %d records, want %d", i, n, lines)
		}
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"txn_id":"a","pid":1,"epoch":2,"off`) // torn by a SIGKILL
	f.Close()
	check := func(when string) {
		recs, err := readJournal(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 || recs[0].TxnID != "a" || recs[0].Epoch != 1 || recs[0].Offsets[0].Offset != 15 ||
			recs[1].TxnID != "b" || recs[1].Epoch != 2 || recs[1].Offsets[0].Offset != 30 {
			t.Fatalf("%s: records %+v, want a@1 (15) and b@2 (30)", when, recs)
		}
	}
	check("before compaction")
	if err := j.compact(); err != nil {
		t.Fatal(err)
	}
	check("after compaction")
	if err := j.reset(); err != nil {
		t.Fatal(err)
	}
	if recs, _ := readJournal(path); len(recs) != 0 {
		t.Fatalf("after reset: %+v", recs)
	}
}
