package state

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/kafkax"
)

// ingestDir is where Ingest writes its tables before Pebble links them in;
// Open empties it (leftovers of a crash were never checkpointed).
const ingestDir = "ingest-tmp"

var ingestSeq atomic.Uint64

// Ingest is Apply for large batches (bulk restores, building a store): it
// writes puts as two sorted tables (entries and time index), has Pebble
// ingest them (no WAL, no memtable: the tables are synced and linked into
// the LSM atomically), and then records cp as part's checkpoint. Among puts
// with the same key the last one wins, as with Apply; puts may be reordered.
//
// Crash safety: the checkpoint is written (and synced) only after the data
// it covers is durable in the LSM. A crash in between leaves data ahead of the
// checkpoint, which the next restore reads again and rewrites in changelog
// order, ending in the same state.
func (s *Store) Ingest(part int32, puts []Put, cp Checkpoint) error {
	for _, p := range puts {
		cp.StreamTime = max(cp.StreamTime, p.TS)
	}
	if len(puts) > 0 {
		if err := s.ingestTables(part, puts); err != nil {
			return fmt.Errorf("state: bulk loading partition %d: %w", part, err)
		}
	}
	// Synced: a bulk load is expensive to redo, an fsync per chunk is not.
	return s.apply(part, nil, cp, pebble.Sync)
}

// ingestTables sorts puts and ingests them as tables.
func (s *Store) ingestTables(part int32, puts []Put) error {
	last := sortedLast(puts)
	dir := filepath.Join(s.dir, ingestDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	n := ingestSeq.Add(1)
	dpath := filepath.Join(dir, fmt.Sprintf("p%d-%d-data.sst", part, n))
	tpath := filepath.Join(dir, fmt.Sprintf("p%d-%d-time.sst", part, n))
	defer os.Remove(dpath)
	defer os.Remove(tpath)
	var buf []byte
	live := make([]int32, 0, len(last))
	err := s.writeTable(dpath, true, func(w *sstable.Writer) error {
		k := prefix(kindData, part)
		for _, i := range last {
			p := &puts[i]
			k = append(k[:prefixLen], p.Key...)
			if p.Value == nil {
				if err := w.Delete(k); err != nil {
					return err
				}
				continue
			}
			buf = binary.BigEndian.AppendUint64(buf[:0], uint64(p.TS))
			buf = append(buf, p.Value...)
			if err := w.Set(k, buf); err != nil {
				return err
			}
			live = append(live, i)
		}
		return nil
	})
	if err != nil {
		return err
	}
	paths := []string{dpath}
	if len(live) > 0 {
		// Time index order: (ts, key).
		ord := make([]sortKey, len(live))
		for j, i := range live {
			ord[j] = sortKey{pfx: uint64(puts[i].TS) ^ (1 << 63), idx: i}
		}
		slices.SortFunc(ord, func(a, b sortKey) int {
			if c := cmp.Compare(a.pfx, b.pfx); c != 0 {
				return c
			}
			return bytes.Compare(puts[a.idx].Key, puts[b.idx].Key)
		})
		for j := range ord {
			live[j] = ord[j].idx
		}
		err := s.writeTable(tpath, false, func(w *sstable.Writer) error {
			var k []byte
			for _, i := range live {
				k = appendTimeKey(k[:0], part, puts[i].TS, puts[i].Key)
				if err := w.Set(k, nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		paths = append(paths, tpath)
	}
	return s.db.Ingest(context.Background(), paths)
}

// sortKey orders puts without chasing pointers on most comparisons: pfx
// holds 8 bytes of the key (after the prefix every key of the chunk
// shares) or the timestamp, compared as an integer; only ties look at the
// keys themselves.
type sortKey struct {
	pfx uint64
	idx int32
}

// sortedLast returns the positions of puts in key order, keeping only the
// last put of each key.
func sortedLast(puts []Put) []int32 {
	common := len(puts[0].Key)
	for i := 1; i < len(puts) && common > 0; i++ {
		k, c := puts[i].Key, 0
		for c < common && c < len(k) && k[c] == puts[0].Key[c] {
			c++
		}
		common = c
	}
	ord := make([]sortKey, len(puts))
	for i := range puts {
		var b [8]byte
		copy(b[:], puts[i].Key[common:])
		ord[i] = sortKey{pfx: binary.BigEndian.Uint64(b[:]), idx: int32(i)}
	}
	slices.SortFunc(ord, func(a, b sortKey) int {
		if c := cmp.Compare(a.pfx, b.pfx); c != 0 {
			return c
		}
		if c := bytes.Compare(puts[a.idx].Key, puts[b.idx].Key); c != 0 {
			return c
		}
		return cmp.Compare(a.idx, b.idx)
	})
	last := make([]int32, 0, len(ord))
	for i, o := range ord {
		if i+1 < len(ord) && o.pfx == ord[i+1].pfx && bytes.Equal(puts[o.idx].Key, puts[ord[i+1].idx].Key) {
			continue
		}
		last = append(last, o.idx)
	}
	return last
}

func appendTimeKey(b []byte, part int32, ts int64, key []byte) []byte {
	b = append(b, kindTime)
	b = binary.BigEndian.AppendUint32(b, uint32(part))
	b = binary.BigEndian.AppendUint64(b, uint64(ts)^(1<<63))
	return append(b, key...)
}

// writeTable writes one sorted table at path with the store's table
// options (compression, bloom filters if bloom); Close syncs it.
func (s *Store) writeTable(path string, bloom bool, fill func(*sstable.Writer) error) error {
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	wo := s.opts.MakeWriterOptions(0, s.db.FormatMajorVersion().MaxTableFormat())
	if !bloom {
		wo.FilterPolicy = nil // the time index is only range-scanned
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), wo)
	if err := fill(w); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// arena holds copies of record keys and values for a bulk restore in large
// blocks (slices into it stay valid as it grows), so chunks of millions of
// records cost a few allocations instead of two per record.
type arena struct {
	blocks [][]byte
	size   int
}

const arenaBlock = 1 << 20

func (a *arena) copy(b []byte) []byte {
	if b == nil {
		return nil
	}
	n := len(a.blocks)
	if n == 0 || cap(a.blocks[n-1])-len(a.blocks[n-1]) < len(b) {
		a.blocks = append(a.blocks, make([]byte, 0, max(arenaBlock, len(b))))
		n++
	}
	blk := a.blocks[n-1]
	off := len(blk)
	blk = append(blk, b...)
	a.blocks[n-1] = blk
	a.size += len(b)
	return blk[off:len(blk):len(blk)]
}

// BulkRestoreMin is the number of changelog offsets left from which a
// restore loads the store in bulk (Store.Ingest of sorted chunks) rather
// than through batches: a fresh worker, or one that was away for long.
const BulkRestoreMin = 50_000

// Bulk restore chunk bounds: a chunk is cut at the first fetch boundary
// after either is reached. Two chunks are in memory at most (one being
// read, one being ingested), so these bound a restore's memory.
const (
	BulkChunkRecords = 1 << 19
	BulkChunkBytes   = 32 << 20
)

// wipeIfAny wipes part if the store holds any entry of it.
func (s *Store) wipeIfAny(part int32) error {
	p := prefix(kindData, part)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	any := it.First()
	if err := it.Close(); err != nil {
		return err
	}
	if !any {
		return nil
	}
	return s.Wipe(part)
}

// restoreBulk reads the changelog from pr.From to end in one goroutine
// (fetch, decode, filter, copy into a chunk) while another sorts the
// previous chunk into tables and ingests them with its checkpoint: the
// two halves of a restore run on two cores. Chunks are ingested in order,
// each with the offset after its last record as checkpoint, so a
// cancelled or killed restore leaves a committed prefix of the changelog.
func (c *Changelog) restoreBulk(ctx context.Context, cl *kgo.Client, store *Store, part int32, cp Checkpoint, end int64, pr *Progress, report func(Progress)) error {
	type chunk struct {
		puts []Put
		cp   Checkpoint
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan chunk, 1)
	applied := make(chan error, 1)
	var doneRecords, doneNext atomic.Int64
	doneNext.Store(pr.From)
	go func() {
		var err error
		for ch := range work {
			if err != nil {
				continue // drain
			}
			if err = ctx.Err(); err == nil {
				err = store.Ingest(part, ch.puts, ch.cp)
			}
			if err != nil {
				cancel()
				continue
			}
			doneRecords.Add(int64(len(ch.puts)))
			doneNext.Store(ch.cp.Next)
		}
		applied <- err
	}()
	var ar arena
	puts := make([]Put, 0, 1<<16)
	chunkRecords := BulkChunkRecords
	if c.chunkRecords > 0 {
		chunkRecords = c.chunkRecords
	}
	cut := func(next int64) error {
		cp.Next = next
		select {
		case work <- chunk{puts: puts, cp: cp}:
		case <-ctx.Done():
			return ctx.Err()
		}
		puts, ar = make([]Put, 0, 1<<16), arena{}
		return nil
	}
	lastReport := time.Now()
	err := kafkax.ReadCommitted(ctx, cl, c.Topic, map[int32]int64{part: pr.From}, map[int32]int64{part: end},
		func(r *kgo.Record) error {
			ts := r.Timestamp.UnixMilli()
			cp.StreamTime = max(cp.StreamTime, ts)
			if c.Filter != nil && !c.Filter(r, cp.StreamTime) {
				return nil
			}
			v := r.Value
			if c.Encode != nil && v != nil {
				v = c.Encode(r)
			}
			puts = append(puts, Put{Key: ar.copy(r.Key), Value: ar.copy(v), TS: ts})
			return nil
		},
		func(_ int32, next, _ int64) {
			if len(puts) >= chunkRecords || ar.size >= BulkChunkBytes {
				if err := cut(next); err != nil {
					return // ReadCommitted sees ctx done
				}
			}
			if report != nil && time.Since(lastReport) >= time.Second {
				pr.Records, pr.Next = doneRecords.Load(), doneNext.Load()
				report(*pr)
				lastReport = time.Now()
			}
		})
	if err == nil {
		err = cut(end)
	}
	close(work)
	aerr := <-applied
	pr.Records, pr.Next = doneRecords.Load(), doneNext.Load()
	if aerr != nil {
		return aerr
	}
	return err
}

// held lists the partitions that have a checkpoint in the store.
func (s *Store) held() ([]int32, error) {
	lo := []byte{kindMeta}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: []byte{kindMeta + 1}})
	if err != nil {
		return nil, err
	}
	var out []int32
	for ok := it.First(); ok; ok = it.Next() {
		if k := it.Key(); len(k) == prefixLen {
			out = append(out, int32(binary.BigEndian.Uint32(k[1:])))
		}
	}
	return out, it.Close()
}

// Range calls fn for every entry of part whose key starts with keyPrefix,
// in key order (the key and value are only valid during the call).
func (s *Store) Range(part int32, keyPrefix []byte, fn func(key []byte, e Entry) error) error {
	lo := dataKey(part, keyPrefix)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v := it.Value()
		if len(v) < 8 {
			it.Close()
			return fmt.Errorf("state: partition %d: corrupt entry (%d bytes)", part, len(v))
		}
		if err := fn(it.Key()[prefixLen:], Entry{TS: int64(binary.BigEndian.Uint64(v)), Value: v[8:]}); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}
