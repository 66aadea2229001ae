package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultIdempotencyWindow is how long an Idempotency-Key is remembered: the
// tokenizer's window, so the HTTP and the stream layers agree.
const DefaultIdempotencyWindow = 24 * time.Hour

// IdemEntry is what the gateway remembers per Idempotency-Key: a keyed
// fingerprint of the request (never card data) and the first response. It is
// the value of the key's record on the gateway idempotency topic.
type IdemEntry struct {
	// Fingerprint is hex(SHA-256) over the request with the PAN replaced by
	// its token under KeyVersion and the CVV left out (see fingerprint).
	Fingerprint string `json:"fp"`
	KeyVersion  uint32 `json:"kv"`
	// TS is when the first request was accepted (Unix ms).
	TS int64 `json:"ts"`
	// Status and Body are the first response, replayed to retries.
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

// IdemStore is the gateway's Idempotency-Key memory. The gateway writes
// each entry's changelog record itself, in the transaction that writes the
// payment, and calls Committed once that transaction commits; a store also
// learns entries committed by other instances (or by a transaction whose
// commit answer was lost) from the changelog topic.
type IdemStore interface {
	// Lookup returns the entry of key if one was committed within the
	// window before now.
	Lookup(key string, now time.Time) (IdemEntry, bool)
	// Committed records an entry whose changelog record has committed.
	Committed(key string, e IdemEntry)
	// Ready reports whether the store has caught up with its changelog.
	Ready() error
}

// TopicStore is an IdemStore kept in memory and rebuilt from the compacted
// gateway idempotency topic: it reads the topic read_committed from the
// start up to its last stable offset before it is ready, then keeps
// tailing it so entries written by other instances become visible. Memory
// is bounded by the window: entries older than it are swept.
//
// Every instance holds every key of the window. That is exact and simple up
// to tens of millions of keys; beyond that the store to use is the
// partitioned on-disk state store with a changelog (DESIGN.md "State"),
// which this interface is shaped for.
type TopicStore struct {
	opts   []kgo.Opt
	topic  string
	window time.Duration
	log    *slog.Logger

	mu      sync.RWMutex
	entries map[string]IdemEntry
	ready   atomic.Bool
	failed  atomic.Pointer[string]
}

// NewTopicStore returns a store over topic; Run loads and tails it.
func NewTopicStore(clientOpts []kgo.Opt, topic string, window time.Duration, log *slog.Logger) *TopicStore {
	if window <= 0 {
		window = DefaultIdempotencyWindow
	}
	if log == nil {
		log = slog.Default()
	}
	return &TopicStore{opts: clientOpts, topic: topic, window: window, log: log, entries: map[string]IdemEntry{}}
}

// Lookup implements IdemStore.
func (s *TopicStore) Lookup(key string, now time.Time) (IdemEntry, bool) {
	s.mu.RLock()
	e, ok := s.entries[key]
	s.mu.RUnlock()
	if !ok || now.Sub(time.UnixMilli(e.TS)) >= s.window {
		return IdemEntry{}, false
	}
	return e, true
}

// Committed implements IdemStore. A live entry is kept: the first answer
// of a key within the window stands.
func (s *TopicStore) Committed(key string, e IdemEntry) {
	s.mu.Lock()
	if old, ok := s.entries[key]; !ok || e.TS-old.TS >= s.window.Milliseconds() {
		s.entries[key] = e
	}
	s.mu.Unlock()
}

// Ready implements IdemStore.
func (s *TopicStore) Ready() error {
	if f := s.failed.Load(); f != nil {
		return errors.New(*f)
	}
	if !s.ready.Load() {
		return fmt.Errorf("idempotency state not yet read from %s", s.topic)
	}
	return nil
}

// Len is the number of keys held, for tests and metrics.
func (s *TopicStore) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.entries)
}

// WaitReady blocks until the store has read its topic to the stable offsets
// noted at start, or ctx ends.
func (s *TopicStore) WaitReady(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !s.ready.Load() {
		if f := s.failed.Load(); f != nil {
			return errors.New(*f)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("idempotency state of %s: %w", s.topic, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Run loads the topic and tails it until ctx is done.
func (s *TopicStore) Run(ctx context.Context) error {
	err := s.run(ctx)
	if err != nil && ctx.Err() == nil {
		msg := err.Error()
		s.failed.Store(&msg)
	}
	return err
}

func (s *TopicStore) run(ctx context.Context) error {
	ends, err := s.stableOffsets(ctx)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), s.opts...),
		kgo.ConsumeTopics(s.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return fmt.Errorf("idempotency state consumer: %w", err)
	}
	defer cl.Close()
	if len(ends) == 0 {
		s.ready.Store(true)
	}
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			s.log.Warn("reading gateway idempotency state", "topic", t, "partition", p, "err", err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				s.apply(r)
			}
			if end, ok := ends[r.Partition]; ok && r.Offset+1 >= end {
				delete(ends, r.Partition)
				if len(ends) == 0 {
					s.ready.Store(true)
					s.log.Info("gateway idempotency state loaded", "topic", s.topic, "keys", s.Len())
				}
			}
		})
		select {
		case <-sweep.C:
			s.sweep(time.Now())
		default:
		}
	}
}

// stableOffsets returns, per partition with records, the last stable offset
// the initial load must reach.
func (s *TopicStore) stableOffsets(ctx context.Context) (map[int32]int64, error) {
	cl, err := kgo.NewClient(s.opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stable, err := adm.ListCommittedOffsets(lctx, s.topic)
	if err != nil {
		return nil, fmt.Errorf("listing offsets of %s: %w", s.topic, err)
	}
	if err := stable.Error(); err != nil {
		return nil, fmt.Errorf("listing offsets of %s (does the topic exist? run `pcistream topology apply`): %w", s.topic, err)
	}
	starts, err := adm.ListStartOffsets(lctx, s.topic)
	if err != nil {
		return nil, fmt.Errorf("listing start offsets of %s: %w", s.topic, err)
	}
	ends := map[int32]int64{}
	stable.Each(func(o kadm.ListedOffset) {
		start := int64(0)
		if so, ok := starts.Lookup(s.topic, o.Partition); ok {
			start = so.Offset
		}
		if o.Offset > start {
			ends[o.Partition] = o.Offset
		}
	})
	return ends, nil
}

func (s *TopicStore) apply(r *kgo.Record) {
	key := string(r.Key)
	if r.Value == nil {
		s.mu.Lock()
		delete(s.entries, key)
		s.mu.Unlock()
		return
	}
	// Most records read back are this instance's own, already recorded by
	// Committed: skip decoding a key that holds a live entry (the first
	// answer of a key stands, whichever instance wrote it).
	s.mu.RLock()
	old, ok := s.entries[key]
	s.mu.RUnlock()
	if ok && r.Timestamp.Sub(time.UnixMilli(old.TS)) < s.window {
		return
	}
	var e IdemEntry
	if err := json.Unmarshal(r.Value, &e); err != nil {
		s.log.Warn("skipping a malformed gateway idempotency entry", "partition", r.Partition, "offset", r.Offset)
		return
	}
	s.Committed(key, e)
}

func (s *TopicStore) sweep(now time.Time) {
	limit := now.Add(-s.window).UnixMilli()
	s.mu.Lock()
	for k, e := range s.entries {
		if e.TS < limit {
			delete(s.entries, k)
		}
	}
	s.mu.Unlock()
}
