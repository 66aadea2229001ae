package tokenizer

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/kafkax"
)

// DefaultIdempotencyWindow is how long an idempotency key suppresses a second
// tokenized event: a webhook retried within it is a duplicate.
const DefaultIdempotencyWindow = 24 * time.Hour

// idemEntry is the value of one record on the idempotency-state topic (key =
// idempotency key). The times are input-record timestamps, so the state is a
// pure function of the input and replays decide the same way.
type idemEntry struct {
	Context string `json:"ctx"` // context id of the first event with the key
	TS      int64  `json:"ts"`  // timestamp (ms) of that event
	Offset  int64  `json:"off"` // its offset in the input partition
}

// idemState is the tokenizer's dedup memory, exact under exactly-once: every
// new key is written to the compacted state topic in the same transaction as
// the tokenized event and the input offsets, and becomes part of the
// committed view only when that transaction commits (Ended(true)). On
// assignment the committed view of a partition is rebuilt from its state
// partition (same partition number: the topics are co-partitioned).
type idemState struct {
	window time.Duration

	mu        sync.Mutex
	committed map[int32]map[string]idemEntry
	pending   map[int32]map[string]idemEntry
	maxTS     map[int32]int64 // newest committed entry timestamp per partition
	commits   int
}

// sweepEvery is how many committed transactions pass between memory sweeps.
const sweepEvery = 256

func newIdemState(window time.Duration) *idemState {
	return &idemState{
		window:    window,
		committed: map[int32]map[string]idemEntry{},
		pending:   map[int32]map[string]idemEntry{},
		maxTS:     map[int32]int64{},
	}
}

// within reports whether ts is within the window of the entry's timestamp.
func (s *idemState) within(e idemEntry, ts int64) bool {
	d := ts - e.TS
	if d < 0 {
		d = -d
	}
	return time.Duration(d)*time.Millisecond < s.window
}

// seen returns the entry for key on partition if it is within the window of
// ts, looking at the open transaction's additions first.
func (s *idemState) seen(part int32, key string, ts int64) (idemEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.pending[part][key]; ok && s.within(e, ts) {
		return e, true
	}
	if e, ok := s.committed[part][key]; ok && s.within(e, ts) {
		return e, true
	}
	return idemEntry{}, false
}

// add records key in the open transaction.
func (s *idemState) add(part int32, key string, e idemEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.pending[part]
	if m == nil {
		m = map[string]idemEntry{}
		s.pending[part] = m
	}
	m[key] = e
}

// end applies (committed) or drops the open transaction's additions. Entries
// of partitions no longer owned are dropped either way.
func (s *idemState) end(committed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if committed {
		for p, m := range s.pending {
			c, owned := s.committed[p]
			if !owned {
				continue
			}
			for k, e := range m {
				c[k] = e
				if e.TS > s.maxTS[p] {
					s.maxTS[p] = e.TS
				}
			}
		}
		s.commits++
		if s.commits%sweepEvery == 0 {
			s.sweepLocked()
		}
	}
	clear(s.pending)
}

// sweepLocked drops entries older than two windows before the newest entry of
// their partition, bounding memory on a long-running worker. Two windows, not
// one, so that only a retry more than a whole window out of order could be
// judged differently than by a freshly rebuilt worker (which loads every
// entry the compacted topic still has).
func (s *idemState) sweepLocked() {
	for p, m := range s.committed {
		limit := s.maxTS[p] - 2*s.window.Milliseconds()
		for k, e := range m {
			if e.TS < limit {
				delete(m, k)
			}
		}
	}
}

// set installs the rebuilt view of a partition.
func (s *idemState) set(part int32, m map[string]idemEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.committed[part] = m
	delete(s.pending, part)
}

// drop forgets partitions that were revoked or lost.
func (s *idemState) drop(parts []int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range parts {
		delete(s.committed, p)
		delete(s.pending, p)
		delete(s.maxTS, p)
	}
}

// owns reports whether the partition's state has been rebuilt.
func (s *idemState) owns(part int32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.committed[part]
	return ok
}

// size is the number of committed keys, for tests and metrics.
func (s *idemState) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.committed {
		n += len(m)
	}
	return n
}

// loadState reads the state topic's partitions read_committed from the start
// to the last stable offset and returns the latest entry per key. Control
// records are kept so that reaching the last stable offset is observable even
// when the partition ends with a transaction marker. A partition the state
// cannot be read for is an error: processing it without its dedup state could
// emit duplicates, so the caller fails closed.
func loadState(ctx context.Context, base []kgo.Opt, topic string, parts []int32, timeout time.Duration) (map[int32]map[string]idemEntry, error) {
	out := make(map[int32]map[string]idemEntry, len(parts))
	if len(parts) == 0 {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	admCl, err := kgo.NewClient(base...)
	if err != nil {
		return nil, fmt.Errorf("idempotency state client: %w", err)
	}
	all, err := kafkax.StableRanges(ctx, kadm.NewClient(admCl), topic, false)
	admCl.Close()
	if err != nil {
		return nil, err
	}
	ranges := map[int32]kafkax.Range{}
	for _, p := range parts {
		out[p] = map[string]idemEntry{}
		r, ok := all[p]
		if !ok {
			return nil, fmt.Errorf("idempotency topic %s has no partition %d: it must be co-partitioned with the input topic (same partition count)", topic, p)
		}
		ranges[p] = r
	}
	err = kafkax.ReadRanges(ctx, base, topic, ranges, func(r *kgo.Record) error {
		m := out[r.Partition]
		if r.Value == nil {
			delete(m, string(r.Key))
			return nil
		}
		var e idemEntry
		if err := json.Unmarshal(r.Value, &e); err != nil {
			return fmt.Errorf("idempotency state %s[%d] offset %d is not a state entry: %w", topic, r.Partition, r.Offset, err)
		}
		m[string(r.Key)] = e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rebuilding idempotency state from %s (within %s): %w", topic, timeout, err)
	}
	return out, nil
}
