package tokenizer

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/state"
)

// DefaultIdempotencyWindow is how long an idempotency key suppresses a second
// tokenized event: a webhook retried within it is a duplicate.
const DefaultIdempotencyWindow = 24 * time.Hour

// idemEntry is the value of one record on the idempotency-state topic (key =
// idempotency key). The times are input-record timestamps, so the state is a
// pure function of the input and replays decide the same way. It is written
// in the binary format of idemformat.go; the JSON tags name the fields of
// the legacy format, which is still read.
type idemEntry struct {
	Context string `json:"ctx"` // context id of the first event with the key
	TS      int64  `json:"ts"`  // timestamp (ms) of that event
	Offset  int64  `json:"off"` // its offset in the input partition
	// Part is that input partition: with repartitioning, records of one
	// key may come from several input partitions, so an offset alone does
	// not name the record (entries written before it was added read 0).
	Part int32 `json:"part"`
}

// The idempotency state is a state.Table: a Pebble store on the worker's
// disk (--state-dir) whose changelog is the compacted idempotency topic. Its
// partitions are the repartition topic's: every record of one idempotency
// key reaches the same partition whatever the producer's partitioner (see
// route in processor.go), so dedup is exact across producers.
//
// Exactly-once: a new key's entry is produced to the changelog in the same
// transaction as the tokenized event and the input offsets, and reaches the
// local store only after that transaction committed, with its changelog
// offset as the checkpoint in the same Pebble batch (internal/state). A
// worker killed at any point restarts with a store that is a committed
// prefix of the changelog and replays only the tail.
//
// Window: a key is a duplicate when an entry exists whose timestamp is less
// than the window away from the record's and that is still live in stream
// time (newer than the partition's newest entry minus the window). The second
// condition only matters for a record more than a window older than the
// partition's newest entry; it makes expiry (which deletes entries that are
// not live) invisible to decisions, so a warm store and a fresh restore
// decide alike.

// openStore opens the tokenizer's state store in dir, or in a fresh
// temporary directory when dir is empty (tests, the demo: state is then
// restored in full at every start).
func openStore(c *cfg) (*state.Store, string, error) {
	dir, tmp := c.stateDir, ""
	if dir == "" {
		d, err := os.MkdirTemp("", "pcistream-tokenizer-state-")
		if err != nil {
			return nil, "", fmt.Errorf("tokenizer: temporary state directory: %w", err)
		}
		dir, tmp = d, d
	}
	s, err := state.Open(dir, state.StoreOpts{CacheBytes: c.cacheBytes, Logger: c.logger})
	if err != nil {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		return nil, "", fmt.Errorf("tokenizer: %w", err)
	}
	return s, tmp, nil
}

// stateTable returns the idempotency table, creating it on first use with
// the state client options (which NewLoop may have set after New).
func (t *Tokenizer) stateTable() *state.Table {
	t.tableOnce.Do(func() {
		t.table = state.NewTable(t.store, &state.Changelog{Topic: t.cfg.topics.Idempotency, ClientOpts: t.cfg.stateOpts},
			state.TableOpts{Window: t.cfg.window, Logger: t.cfg.logger, Metrics: t.cfg.stateMetrics, FilterBytes: t.cfg.filterBytes})
	})
	return t.table
}

// seen returns the first event of key if it is a duplicate at ts.
func (t *Tokenizer) seen(part int32, key string, ts int64) (idemEntry, bool, error) {
	e, live, err := t.stateTable().Get(part, []byte(key))
	if err != nil || !live {
		return idemEntry{}, false, err
	}
	d := ts - e.TS
	if d < 0 {
		d = -d
	}
	if time.Duration(d)*time.Millisecond >= t.cfg.window {
		return idemEntry{}, false, nil
	}
	ie, err := parseIdem(e.Value)
	if err != nil {
		return idemEntry{}, false, fmt.Errorf("idempotency entry for a key of partition %d: %w", part, err)
	}
	return ie, true, nil
}

// remember records key in the open transaction and returns its changelog
// record.
func (t *Tokenizer) remember(part int32, key string, e idemEntry) *kgo.Record {
	if t.cfg.jsonEntries {
		return t.stateTable().Put(part, []byte(key), e.appendJSON(nil), e.TS)
	}
	return t.stateTable().Put(part, []byte(key), e.append(nil), e.TS)
}

// StateStatus is the restore status of every idempotency-state partition
// this worker owns ("restoring" or "restored", with progress): for readiness
// probes and operators.
func (t *Tokenizer) StateStatus() map[int32]state.PartitionStatus {
	return t.stateTable().Status()
}

// StateReady is nil once every owned state partition is restored: wire it
// into /readyz next to the loop's readiness.
func (t *Tokenizer) StateReady() error { return t.stateTable().Ready() }

// Close stops running restores and closes the state store (removing it when
// it was temporary).
func (t *Tokenizer) Close() error {
	if t.table != nil {
		t.table.Close()
	}
	err := t.store.Close()
	if t.tmpDir != "" {
		err = errors.Join(err, os.RemoveAll(t.tmpDir))
	}
	return err
}
