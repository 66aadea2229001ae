package devstack

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnJournal is the dev stack's stand-in for the PREPARE_COMMIT record of
// Kafka's transaction log. kfake keeps a transaction's group offsets
// (TxnOffsetCommit) in memory only, and its EndTxn writes the commit
// markers to the transaction's partitions first and the offsets to its
// groups.log after them (txns.go, pidinfo.endTx). A SIGKILL in between
// leaves the output committed and the offsets lost: a stateless worker
// then processes the same input again and its output is duplicated.
// Kafka's coordinator instead writes PREPARE_COMMIT (with the offsets
// already in __consumer_offsets as transactional records) before any
// marker, and a restarted coordinator completes the commit.
//
// The journal records, before kfake handles a committing EndTxn, the
// offsets the transaction staged. At the next start on the data dir
// (rollForward) a transaction whose COMMIT marker is in the log gets its
// offsets applied if kfake lost them.
type txnJournal struct {
	mu     sync.Mutex
	path   string
	f      *os.File
	size   int64
	staged map[int64]*prepared // producer id -> offsets of its open transaction
}

// prepared is one journal record: a transaction that asked to commit.
type prepared struct {
	TxnID   string         `json:"txn_id"`
	PID     int64          `json:"pid"`
	Epoch   int16          `json:"epoch"`
	Offsets []stagedOffset `json:"offsets"`
	index   map[string]int // group/topic/partition -> position in Offsets
}

type stagedOffset struct {
	Group       string   `json:"group"`
	Topic       string   `json:"topic,omitempty"`
	TopicID     [16]byte `json:"topic_id"` // TxnOffsetCommit v6+ names topics by id
	Partition   int32    `json:"partition"`
	Offset      int64    `json:"offset"`
	LeaderEpoch int32    `json:"leader_epoch"`
	Metadata    *string  `json:"metadata,omitempty"`
}

// journalCompactBytes bounds the journal: past it, only the last record
// of each transactional id is kept (earlier ones are resolved, since a
// producer sends its next EndTxn only after the previous one returned).
const journalCompactBytes = 4 << 20

func openTxnJournal(path string) (*txnJournal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("devstack: transaction journal: %w", err)
	}
	j := &txnJournal{path: path, staged: map[int64]*prepared{}}
	if err := j.reopen(); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *txnJournal) reopen() error {
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("devstack: transaction journal: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("devstack: transaction journal: %w", err)
	}
	j.f, j.size = f, st.Size()
	return nil
}

// install adds the control functions that feed the journal. They only
// observe (the requests then go to kfake as usual), except when the
// journal cannot be written: the commit is then refused with a retriable
// error, as a coordinator whose log write failed.
func (j *txnJournal) install(c *kfake.Cluster) {
	c.ControlKey(int16(kmsg.TxnOffsetCommit), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		j.stage(kreq.(*kmsg.TxnOffsetCommitRequest))
		return nil, nil, false
	})
	c.ControlKey(int16(kmsg.EndTxn), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.EndTxnRequest)
		if err := j.prepare(req); err != nil {
			c.KeepControl()
			resp := req.ResponseKind().(*kmsg.EndTxnResponse)
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return resp, nil, true
		}
		return nil, nil, false
	})
}

func (j *txnJournal) stage(req *kmsg.TxnOffsetCommitRequest) {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.staged[req.ProducerID]
	if p == nil || p.Epoch != req.ProducerEpoch {
		p = &prepared{TxnID: req.TransactionalID, PID: req.ProducerID, Epoch: req.ProducerEpoch, index: map[string]int{}}
		j.staged[req.ProducerID] = p
	}
	for _, t := range req.Topics {
		for _, pt := range t.Partitions {
			o := stagedOffset{Group: req.Group, Topic: t.Topic, TopicID: t.TopicID, Partition: pt.Partition,
				Offset: pt.Offset, LeaderEpoch: pt.LeaderEpoch, Metadata: pt.Metadata}
			k := fmt.Sprintf("%s\x00%s\x00%x\x00%d", req.Group, t.Topic, t.TopicID, pt.Partition)
			if i, ok := p.index[k]; ok {
				p.Offsets[i] = o
				continue
			}
			p.index[k] = len(p.Offsets)
			p.Offsets = append(p.Offsets, o)
		}
	}
}

// prepare writes the record of a committing transaction with staged
// offsets before kfake sees its EndTxn. One write call: a SIGKILL leaves
// the record whole or torn, and a torn last line is ignored on load
// (kfake had not handled the EndTxn yet). Process crashes are what the dev
// stack survives; like kfake's own logs, the record is not fsynced.
func (j *txnJournal) prepare(req *kmsg.EndTxnRequest) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.staged[req.ProducerID]
	delete(j.staged, req.ProducerID)
	if !req.Commit || p == nil || p.Epoch != req.ProducerEpoch || len(p.Offsets) == 0 {
		return nil
	}
	line, err := json.Marshal(p)
	if err != nil {
		return err
	}
	n, err := j.f.Write(append(line, '\n'))
	j.size += int64(n)
	if err != nil {
		return err
	}
	if j.size >= journalCompactBytes {
		return j.compact()
	}
	return nil
}

// compact rewrites the journal with the last record of each
// transactional id (tmp file and rename, so a crash keeps one or the
// other).
func (j *txnJournal) compact() error {
	recs, err := readJournal(j.path)
	if err != nil {
		return err
	}
	tmp := j.path + ".tmp"
	var buf bytes.Buffer
	for _, r := range recs {
		line, err := json.Marshal(r)
		if err != nil {
			return err
		}
		buf.Write(append(line, '\n'))
	}
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return err
	}
	j.f.Close()
	return j.reopen()
}

// reset empties the journal once every record is resolved.
func (j *txnJournal) reset() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("devstack: transaction journal: %w", err)
	}
	j.size = 0
	return nil
}

func (j *txnJournal) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.f.Close()
}

// readJournal returns the last record of each transactional id, in the
// order of their last appearance.
func readJournal(path string) ([]prepared, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("devstack: reading transaction journal: %w", err)
	}
	last := map[string]int{}
	var recs []prepared
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var p prepared
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			continue // a torn last line: its EndTxn never reached kfake
		}
		if i, ok := last[p.TxnID]; ok {
			recs[i].TxnID = "" // superseded
		}
		last[p.TxnID] = len(recs)
		recs = append(recs, p)
	}
	out := recs[:0]
	for _, r := range recs {
		if r.TxnID != "" {
			out = append(out, r)
		}
	}
	return out, sc.Err()
}
