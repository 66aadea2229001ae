package kafkax

import (
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// An aborted transaction listed again by a later response, after its
// marker was read, must not be learned again: it would drop the
// producer's next, committed, transaction. A follower's filter keeps no
// commit markers (one per transaction, forever).
func TestAbortFilterLearnsAnAbortOnce(t *testing.T) {
	for _, commits := range []bool{true, false} {
		f := newAbortFilter(commits)
		listed := []kmsg.FetchResponseTopicPartitionAbortedTransaction{{ProducerID: 7, FirstOffset: 0}}
		data := func(off int64, epoch int16) *kgo.Record {
			return &kgo.Record{Offset: off, ProducerID: 7, ProducerEpoch: epoch, Value: []byte("v")}
		}
		marker := func(off int64, epoch int16, typ uint16) *kgo.Record {
			k := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), typ)
			return &kgo.Record{Offset: off, ProducerID: 7, ProducerEpoch: epoch, Key: k}
		}
		txn := func(r *kgo.Record) *kgo.Record {
			r.Attrs = kgo.NewRecordAttrs(kgo.RecordAttrsOpts{Transactional: true, Control: r.Key != nil})
			return r
		}
		f.learn(listed)
		if f.keep(txn(data(0, 1))) {
			t.Fatal("the aborted record was kept")
		}
		if f.keep(txn(marker(1, 1, 0))) {
			t.Fatal("a marker was kept")
		}
		f.learn(listed) // listed again by a response that overlapped it
		if !f.keep(txn(data(2, 2))) {
			t.Fatal("the next transaction's record was dropped")
		}
		f.keep(txn(marker(3, 2, 1)))
		if commits != (len(f.commits) == 1) {
			t.Fatalf("commits kept: %d (keeping: %v)", len(f.commits), commits)
		}
	}
}
