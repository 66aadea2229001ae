// Package state is pcistream's local, disk-backed keyed state with a Kafka
// changelog, modelled on Kafka Streams' state stores (a local store, a
// compacted changelog topic, checkpointed offsets, restore on assignment)
// and fixing two of their weak points:
//
//   - The changelog offset (the checkpoint) is stored in the same Pebble
//     batch as the data it covers, so store and checkpoint can never
//     disagree, even after SIGKILL or power loss (Pebble's WAL recovers a
//     prefix of batches, never half of one). Streams keeps the checkpoint in
//     a separate file and, under exactly-once, must wipe the whole store
//     after an unclean shutdown (KIP-892 is the fix in progress there).
//   - Only committed changelog data is ever written to the store: live
//     writes are applied after their Kafka transaction committed (Table.Ended)
//     and restores read read_committed up to the last stable offset. A
//     checkpoint is therefore never ahead of a committed transaction, and a
//     crash between commit and apply only leaves the checkpoint behind,
//     which the next restore replays.
//
// Memory is bounded by the configured block cache, memtables and key-filter
// budget (TableOpts.FilterBytes), not by the number of keys. Entries carry a timestamp (the input record's, so replays
// decide the same way) and expire after a window measured in stream time.
//
// The package is not tokenizer-specific: Store is the Pebble layer, Changelog
// restores a partition from its topic, and Table ties them into a windowed
// keyed table for an exactly-once processor.
package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Key layout. Every key starts with a kind byte and the partition (4 bytes,
// big endian), so one worker's partitions share one Pebble instance and a
// partition can be wiped with one range deletion.
//
//	'd' part key        -> ts(8) value      the entry
//	't' part ts(8) key  -> (empty)          time index, for expiry
//	'g' part ts(8) ...  -> members          time index of bulk loads (timegroup.go)
//	'm' part            -> next(8) stream(8) checkpoint
const (
	kindData  = 'd'
	kindTime  = 't'
	kindMeta  = 'm'
	prefixLen = 5
)

// DefaultCacheBytes is the default Pebble block cache size.
const DefaultCacheBytes = 64 << 20

// DefaultMemTableBytes is the default Pebble memtable size.
const DefaultMemTableBytes = 32 << 20

// Entry is one stored value with its timestamp (Unix ms).
type Entry struct {
	TS    int64
	Value []byte
}

// Put is one write: Value nil deletes the key.
type Put struct {
	Key   []byte
	Value []byte
	TS    int64
}

// Checkpoint is a partition's position in its changelog: every committed
// changelog record below Next is reflected in the store. StreamTime is the
// largest entry timestamp applied, the clock the window is measured on.
type Checkpoint struct {
	Next       int64
	StreamTime int64
}

// StoreOpts configures Open.
type StoreOpts struct {
	// CacheBytes is the block cache size (default DefaultCacheBytes). With
	// the memtables it bounds the store's memory, whatever the key count.
	CacheBytes int64
	// MemTableBytes is the memtable size (default DefaultMemTableBytes);
	// Pebble keeps up to two in memory.
	MemTableBytes uint64
	// Logger receives Pebble's errors (default slog.Default()).
	Logger *slog.Logger
}

// Store is a Pebble database holding the state of several partitions.
// It is safe for concurrent use.
type Store struct {
	db   *pebble.DB
	dir  string
	opts *pebble.Options // for writing tables to ingest (bulk.go)
	// bulk limits the bulk restores running at once (each holds two
	// chunks in memory and keeps two cores busy): see bulkSlots.
	bulk chan struct{}
	// ingestSeq numbers the files written for ingestion (ingestPaths).
	ingestSeq atomic.Uint64
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, o StoreOpts) (*Store, error) {
	if dir == "" {
		return nil, errors.New("state: no directory: set --state-dir")
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = DefaultMemTableBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: creating %s: %w", dir, err)
	}
	cache := pebble.NewCache(o.CacheBytes)
	defer cache.Unref() // the DB holds its own reference
	opts := &pebble.Options{
		Cache:                       cache,
		MemTableSize:                o.MemTableBytes,
		MemTableStopWritesThreshold: 4,
		MaxOpenFiles:                1000,
		Logger:                      pebbleLogger{o.Logger},
	}
	// Most lookups are for keys that are not there (a new idempotency key):
	// bloom filters answer those without reading data blocks.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("state: opening store %s (is another worker using this --state-dir?): %w", dir, err)
	}
	opts.EnsureDefaults()
	// Tables a crashed bulk restore had not ingested yet: their data was
	// never checkpointed, the next restore reads it again.
	if err := os.RemoveAll(filepath.Join(dir, ingestDir)); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: cleaning %s: %w", filepath.Join(dir, ingestDir), err)
	}
	return &Store{db: db, dir: dir, opts: opts, bulk: make(chan struct{}, bulkSlots())}, nil
}

// Close flushes nothing extra (every batch is in the WAL) and closes.
func (s *Store) Close() error { return s.db.Close() }

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// DB exposes the Pebble instance for metrics and benchmarks.
func (s *Store) DB() *pebble.DB { return s.db }

// appendPrefix appends the kind and partition prefix to b.
func appendPrefix(b []byte, kind byte, part int32) []byte {
	return binary.BigEndian.AppendUint32(append(b, kind), uint32(part))
}

func prefix(kind byte, part int32) []byte {
	b := make([]byte, prefixLen, prefixLen+64)
	b[0] = kind
	binary.BigEndian.PutUint32(b[1:], uint32(part))
	return b
}

func dataKey(part int32, key []byte) []byte { return append(prefix(kindData, part), key...) }

func timeKey(part int32, ts int64, key []byte) []byte {
	b := prefix(kindTime, part)
	b = binary.BigEndian.AppendUint64(b, uint64(ts)^(1<<63)) // order negatives first
	return append(b, key...)
}

func metaKey(part int32) []byte { return prefix(kindMeta, part) }

// prefixEnd is the smallest key greater than every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Get returns the entry for key in part.
func (s *Store) Get(part int32, key []byte) (Entry, bool, error) {
	v, closer, err := s.db.Get(dataKey(part, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("state: reading partition %d: %w", part, err)
	}
	defer closer.Close()
	if len(v) < 8 {
		return Entry{}, false, fmt.Errorf("state: partition %d: corrupt entry (%d bytes)", part, len(v))
	}
	return Entry{TS: int64(binary.BigEndian.Uint64(v)), Value: append([]byte(nil), v[8:]...)}, true, nil
}

// Checkpoint returns part's changelog position; ok is false for a partition
// the store has never held.
func (s *Store) Checkpoint(part int32) (Checkpoint, bool, error) {
	v, closer, err := s.db.Get(metaKey(part))
	if errors.Is(err, pebble.ErrNotFound) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("state: reading checkpoint of partition %d: %w", part, err)
	}
	defer closer.Close()
	if len(v) != 16 {
		return Checkpoint{}, false, fmt.Errorf("state: partition %d: corrupt checkpoint", part)
	}
	return Checkpoint{Next: int64(binary.BigEndian.Uint64(v)), StreamTime: int64(binary.BigEndian.Uint64(v[8:]))}, true, nil
}

// Apply writes puts and the new checkpoint of part in one atomic batch.
// The checkpoint's StreamTime is raised to the newest put; Next is set as
// given. Without fsync: a crash (even of the process alone: Pebble writes
// its WAL from a background goroutine) may lose a suffix of batches
// together with their checkpoints, which the next restore replays from the
// changelog.
func (s *Store) Apply(part int32, puts []Put, cp Checkpoint) error {
	return s.apply(part, puts, cp, pebble.NoSync)
}

func (s *Store) apply(part int32, puts []Put, cp Checkpoint, wo *pebble.WriteOptions) error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := fillBatch(b, part, puts, cp); err != nil {
		return err
	}
	if err := b.Commit(wo); err != nil {
		return fmt.Errorf("state: writing partition %d: %w", part, err)
	}
	return nil
}

// PartPuts is one partition's share of ApplyParts.
type PartPuts struct {
	Part int32
	Puts []Put
	CP   Checkpoint
}

// ApplyParts is Apply for several partitions in one atomic batch: one
// Pebble commit instead of one per partition (the gateway's committer
// records every transaction's entries, spread over all partitions).
func (s *Store) ApplyParts(parts []PartPuts) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, pp := range parts {
		if err := fillBatch(b, pp.Part, pp.Puts, pp.CP); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("state: writing %d partitions: %w", len(parts), err)
	}
	return nil
}

// fillBatch adds puts and part's checkpoint to b.
func fillBatch(b *pebble.Batch, part int32, puts []Put, cp Checkpoint) error {
	// The batch copies keys and values: one scratch buffer serves them all
	// (this runs for every committed transaction).
	var buf []byte
	for _, p := range puts {
		if p.TS > cp.StreamTime {
			cp.StreamTime = p.TS
		}
		buf = append(appendPrefix(buf[:0], kindData, part), p.Key...)
		dkEnd := len(buf)
		if p.Value == nil {
			if err := b.Delete(buf, nil); err != nil {
				return err
			}
			continue
		}
		buf = append(binary.BigEndian.AppendUint64(buf, uint64(p.TS)), p.Value...)
		vEnd := len(buf)
		buf = binary.BigEndian.AppendUint64(appendPrefix(buf, kindTime, part), uint64(p.TS)^(1<<63)) // as timeKey
		buf = append(buf, p.Key...)
		if err := b.Set(buf[:dkEnd], buf[dkEnd:vEnd], nil); err != nil {
			return err
		}
		if err := b.Set(buf[vEnd:], nil, nil); err != nil {
			return err
		}
	}
	m := make([]byte, 16)
	binary.BigEndian.PutUint64(m, uint64(cp.Next))
	binary.BigEndian.PutUint64(m[8:], uint64(cp.StreamTime))
	return b.Set(metaKey(part), m, nil)
}

// Expire deletes up to about limit entries of part with a timestamp at or
// before cutoff, oldest first within each index (the time index groups of
// bulk loads, then the entries Apply indexed), and returns how many index
// entries it consumed (it is done when that is below limit). An entry
// rewritten later with a newer timestamp keeps its newer version.
func (s *Store) Expire(part int32, cutoff int64, limit int) (int, error) {
	b := s.db.NewBatch()
	defer b.Close()
	n, err := s.expireGroups(b, part, cutoff, limit)
	if err != nil {
		return n, err
	}
	if n < limit {
		m, err := s.expireSingles(b, part, cutoff, limit-n)
		n += m
		if err != nil {
			return n, err
		}
	}
	if b.Empty() {
		return n, nil
	}
	return n, b.Commit(pebble.NoSync)
}

// expireSingles is Expire for the time index entries Apply writes (one
// per entry), adding its deletions to b.
func (s *Store) expireSingles(b *pebble.Batch, part int32, cutoff int64, limit int) (int, error) {
	lo := prefix(kindTime, part)
	hi := binary.BigEndian.AppendUint64(prefix(kindTime, part), uint64(cutoff+1)^(1<<63))
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	n := 0
	var last []byte
	for ok := it.First(); ok && n < limit; ok = it.Next() {
		k := it.Key()
		ts := int64(binary.BigEndian.Uint64(k[prefixLen:]) ^ (1 << 63))
		key := k[prefixLen+8:]
		e, found, err := s.Get(part, key)
		if err != nil {
			it.Close()
			return n, err
		}
		if found && e.TS <= ts {
			if err := b.Delete(dataKey(part, key), nil); err != nil {
				it.Close()
				return n, err
			}
		}
		last = append(last[:0], k...)
		n++
	}
	if err := it.Close(); err != nil {
		return n, err
	}
	if n == 0 {
		return 0, nil
	}
	// One range tombstone for the consumed index entries.
	return n, b.DeleteRange(lo, append(last, 0), nil)
}

// Wipe deletes everything held for part, checkpoint included.
func (s *Store) Wipe(part int32) error {
	for _, k := range []byte{kindData, kindTime, kindGroup, kindMeta} {
		p := prefix(k, part)
		if err := s.db.DeleteRange(p, prefixEnd(p), pebble.NoSync); err != nil {
			return fmt.Errorf("state: wiping partition %d: %w", part, err)
		}
	}
	return nil
}

// Count returns the number of entries of part (a full scan: for tests and
// benchmarks).
func (s *Store) Count(part int32) (int, error) {
	p := prefix(kindData, part)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return 0, err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, it.Close()
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(string, ...any) {}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("state store", "err", fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error("state store fatal", "err", fmt.Sprintf(format, args...))
	os.Exit(2)
}
