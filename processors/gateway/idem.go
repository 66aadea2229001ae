package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/state"
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
// payment; the store learns it when that transaction commits (the
// committer's OnCommitted) and learns the entries of other instances from
// the changelog topic.
type IdemStore interface {
	KeyChecker
	// Ready reports whether the store has restored its changelog.
	Ready() error
}

// StateStore is the IdemStore on internal/state, the tokenizer's state
// layer: a Pebble store on local disk (memory bounded by its cache, not by
// the number of keys) with the compacted gateway idempotency topic as its
// changelog, a checkpoint so a restart replays only the tail, and expiry
// after the window.
//
// Every instance follows every partition of the topic (no instance owns a
// key: a load balancer may send a retry anywhere). Exactness across
// instances, in two steps: the payment handler answers a key found in the
// local store at once (Find: it was committed); a key not found goes to
// the committer with its records, which, once per transaction and after
// the transaction's requests were all queued, lists the end offsets of
// their keys' partitions (ListKeyEnds), waits until the store has read up
// to them (WaitFor) and looks every key up again before it commits: a key
// found then is answered from its entry (replay or 409) and nothing of it
// is committed (TxnCommitter). So a retry
// never misses a first request whose transaction committed before the
// retry arrived, on whichever instance. The barrier is the partitions'
// high watermark (state.Follower): a transaction of another instance left
// open there delays the check until it is decided (at worst its
// transaction timeout; requests past their deadline get 503). Two
// requests with one key in flight at the same time on two instances are
// not serialised by this (each misses, each writes): that window is
// bounded by the commit timeout, the tokenizer's dedup by key still keeps
// one event, and a load balancer that routes by Idempotency-Key closes it
// (README, "Exactly once, HTTP to Kafka").
type StateStore struct {
	f     *state.Follower
	store *state.Store
	tmp   string
}

// StateStoreConfig configures OpenStateStore.
type StateStoreConfig struct {
	ClientOpts []kgo.Opt
	Topic      string
	// Dir is the Pebble directory, kept across restarts (empty: a temporary
	// directory, fully restored at each start and removed by Close).
	Dir    string
	Window time.Duration
	// CacheBytes bounds the store's block cache (default
	// state.DefaultCacheBytes).
	CacheBytes int64
	// FilterBytes bounds the in-memory filter that answers most new keys
	// without a Pebble read (default DefaultStateFilterBytes; negative: no
	// filter). Past it, lookups read Pebble.
	FilterBytes int64
	Logger      *slog.Logger
}

// DefaultStateFilterBytes is the default memory budget of the state's key
// filter: about 50 million keys in the window (10 bits each), that is an
// average of 600 new Idempotency-Keys a second over a 24h window; more keys
// than that are still answered exactly, by Pebble reads.
const DefaultStateFilterBytes = 64 << 20

// OpenStateStore opens the store; Run restores and follows the topic.
func OpenStateStore(c StateStoreConfig) (*StateStore, error) {
	if c.Window <= 0 {
		c.Window = DefaultIdempotencyWindow
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.FilterBytes == 0 {
		c.FilterBytes = DefaultStateFilterBytes
	}
	dir, tmp := c.Dir, ""
	if dir == "" {
		d, err := os.MkdirTemp("", "pcistream-gateway-state-")
		if err != nil {
			return nil, fmt.Errorf("gateway: state directory: %w (set --state-dir)", err)
		}
		dir, tmp = d, d
	}
	st, err := state.Open(dir, state.StoreOpts{CacheBytes: c.CacheBytes, MemTableBytes: 32 << 20, Logger: c.Logger})
	if err != nil {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		return nil, fmt.Errorf("gateway: %w", err)
	}
	f := state.NewFollower(st, &state.Changelog{Topic: c.Topic, ClientOpts: c.ClientOpts},
		state.FollowerOpts{Window: c.Window, Logger: c.Logger, FilterBytes: c.FilterBytes})
	return &StateStore{f: f, store: st, tmp: tmp}, nil
}

// Run restores and follows the changelog until ctx is done.
func (s *StateStore) Run(ctx context.Context) error { return s.f.Run(ctx) }

// WaitReady blocks until the store is restored.
func (s *StateStore) WaitReady(ctx context.Context) error { return s.f.WaitReady(ctx) }

// Ready implements IdemStore.
func (s *StateStore) Ready() error { return s.f.Ready() }

// Committed records this instance's committed idempotency records (records
// of other topics are ignored): the committer's OnCommitted.
func (s *StateStore) Committed(recs []*kgo.Record) error { return s.f.Committed(recs) }

// ListKeyEnds implements KeyChecker: one listing of the keys' partitions.
func (s *StateStore) ListKeyEnds(ctx context.Context, keys [][]byte) (map[int32]int64, error) {
	return s.f.ListKeyEnds(ctx, keys)
}

// WaitFor implements KeyChecker: a wait for the store to read up to ends,
// stopping below the caller's open records (state.Follower.WaitFor).
func (s *StateStore) WaitFor(ctx context.Context, ends map[int32]int64, open []*kgo.Record) error {
	return s.f.WaitFor(ctx, ends, open)
}

// Find implements KeyChecker: key's entry in the local store, without
// waiting for entries committed elsewhere (WaitFor).
func (s *StateStore) Find(key []byte, now time.Time) (IdemEntry, bool, error) {
	e, ok, err := s.f.Get(key, now)
	if err != nil || !ok {
		return IdemEntry{}, false, err
	}
	var ie IdemEntry
	if err := json.Unmarshal(e.Value, &ie); err != nil {
		return IdemEntry{}, false, fmt.Errorf("gateway: malformed idempotency entry: %w", err)
	}
	return ie, true, nil
}

// Close closes the store (after Run returned).
func (s *StateStore) Close() error {
	err := s.store.Close()
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
	}
	return err
}

// appendJSON renders e as its changelog value (the IdemEntry JSON) without
// reflection: it is on every payment's path. Fingerprint is hex and Body
// is JSON the gateway rendered.
func (e *IdemEntry) appendJSON(b []byte) []byte {
	b = e.appendHead(b)
	b = append(b, e.Body...)
	return append(b, '}')
}

// appendHead appends the entry's JSON up to its body: the body's JSON and
// a closing brace complete it.
func (e *IdemEntry) appendHead(b []byte) []byte {
	b = append(b, `{"fp":`...)
	if isHexString(e.Fingerprint) {
		// The fingerprint is hex: nothing to escape.
		b = append(append(append(b, '"'), e.Fingerprint...), '"')
	} else {
		b = strconv.AppendQuote(b, e.Fingerprint)
	}
	b = append(b, `,"kv":`...)
	b = strconv.AppendUint(b, uint64(e.KeyVersion), 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, e.TS, 10)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	return append(b, `,"body":`...)
}

func isHexString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}
