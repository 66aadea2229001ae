package state

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/kafkax"
)

// ingestDir is where Ingest writes its tables before Pebble links them in;
// Open empties it (leftovers of a crash were never checkpointed).
const ingestDir = "ingest-tmp"

// ingestPaths creates the ingest directory and returns fresh paths in it
// for partition part's files, one per suffix, sharing one sequence number
// (p<part>-<n><suffix>).
func (s *Store) ingestPaths(part int32, suffixes ...string) ([]string, error) {
	dir := filepath.Join(s.dir, ingestDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	n := s.ingestSeq.Add(1)
	paths := make([]string, len(suffixes))
	for i, sfx := range suffixes {
		paths[i] = filepath.Join(dir, fmt.Sprintf("p%d-%d%s", part, n, sfx))
	}
	return paths, nil
}

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
	size := 0
	for _, p := range puts {
		size += recHeader + prefixLen + len(p.Key) + 8 + len(p.Value)
	}
	c := chunk{buf: make([]byte, 0, size)} // exact: no growing copies
	c.reset(part)
	for _, p := range puts {
		c.add(p.Key, p.Value, p.TS)
	}
	if len(c.buf) > math.MaxUint32 {
		return fmt.Errorf("state: bulk loading partition %d: %d bytes in one call, more than 4 GiB: split it", part, len(c.buf))
	}
	c.cp = cp
	return s.ingestChunk(&c)
}

// writeTable writes one sorted table at path with the store's table
// options (compression, bloom filters), or the time index's when
// timeIndex; Close syncs it.
func (s *Store) writeTable(path string, timeIndex bool, fill func(*sstable.Writer) error) error {
	w, err := s.newTable(path, timeIndex)
	if err != nil {
		return err
	}
	if err := fill(w); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// newTable creates the table at path for writeTable; its Close syncs and
// closes the file.
func (s *Store) newTable(path string, timeIndex bool) (*sstable.Writer, error) {
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	wo := s.opts.MakeWriterOptions(0, s.db.FormatMajorVersion().MaxTableFormat())
	if timeIndex {
		timeIndexOptions(&wo)
	}
	return sstable.NewWriter(&bigWritable{f: f, w: bufio.NewWriterSize(f, 1<<20)}, wo), nil
}

// Time index tables of bulk restores: the index is only range-scanned
// (expiry walks it from its oldest key), never point-read, so it needs no
// bloom filter and can have large blocks with few restart points: less to
// compress and write per key (the full key stored at each restart point,
// an index entry and a compression call per block). Measured on a 1M-key
// restore: 3 MiB less disk and about a tenth less CPU per key than
// Pebble's defaults (4 KiB blocks, a restart point every 16 keys).
const (
	timeIndexBlockSize       = 32 << 10
	timeIndexRestartInterval = 128
)

func timeIndexOptions(wo *sstable.WriterOptions) {
	wo.FilterPolicy = nil
	wo.BlockSize = timeIndexBlockSize
	wo.BlockRestartInterval = timeIndexRestartInterval
}

// bigWritable is Pebble's file writable with a 1 MiB buffer instead of
// 4 KiB: a bulk restore writes tables of tens of MiB, and one write system
// call per 4 KiB was a tenth of its CPU time.
type bigWritable struct {
	f vfs.File
	w *bufio.Writer
}

func (b *bigWritable) Write(p []byte) error {
	_, err := b.w.Write(p)
	return err
}

// Finish flushes, syncs and closes the file.
func (b *bigWritable) Finish() error {
	err := b.w.Flush()
	if err == nil {
		err = b.f.Sync()
	}
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Abort closes the file; the caller removes it.
func (b *bigWritable) Abort() { _ = b.f.Close() }

// BulkRestoreMin is the number of changelog offsets left from which a
// restore loads the store in bulk (Store.Ingest of sorted chunks) rather
// than through batches: a fresh worker, or one that was away for long.
const BulkRestoreMin = 50_000

// Bulk restore chunk bounds: a chunk is cut at the first fetch boundary
// after either is reached. Two chunks are in memory at most (one being
// read, one being ingested; their buffers are reused), so these bound a
// restore's memory.
const (
	BulkChunkRecords = 1 << 19
	BulkChunkBytes   = 32 << 20
	// bulkChunkSlack is allocated beyond BulkChunkBytes so that the
	// record that crosses it (cut right after) does not grow the buffer.
	bulkChunkSlack = 1 << 20
)

// bulkSlots is how many bulk restores of one store run at once: one per
// two cores (a restore's reader and ingester each keep one busy), at least
// two and at most four, which bounds their memory (two chunks each, some
// 115 MiB with their sort arrays). At least two because a partition's read
// and its merge do not overlap (the merge needs the last record), so with
// one slot the cores took turns: a worker restoring 3 partitions of 1M
// keys in all used 1.1 of 2 cores and took 0.94-1.0 s; with two slots one
// partition's merge runs while the next one is read (0.73-0.86 s, 1.33M
// keys/s at 10M keys against 1.22M), for a peak RSS of 430-467 MiB
// instead of 258-283.
func bulkSlots() int { return min(max(runtime.GOMAXPROCS(0)/2, 2), 4) }

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
// (fetch ahead, decode without allocating, filter, copy into a flat chunk)
// while another sorts the previous chunk, writes it as a sorted run (and
// its time index table), and every BulkGenerationChunks chunks merges the
// runs into non-overlapping tables that Pebble ingests before the
// generation's checkpoint is written: the two halves of a restore run on
// two cores, and the merge on all of them. Generations are ingested in
// order, each with the offset after its last record as checkpoint, so a
// cancelled or killed restore leaves a committed prefix of the changelog
// (and loses at most the generation it was reading). Two chunk buffers
// take turns, so a restore allocates them once.
func (c *Changelog) restoreBulk(ctx context.Context, cl *kgo.Client, store *Store, part int32, cp Checkpoint, end int64, pr *Progress, report func(Progress)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunkRecords := BulkChunkRecords
	if c.chunkRecords > 0 {
		chunkRecords = c.chunkRecords
	}
	work := make(chan *chunk)
	free := make(chan *chunk, 2)
	for range 2 {
		// Allocated once at full size: growing them by appending
		// copied every chunk several times over fresh pages.
		buf, release := bigBuf(BulkChunkBytes + bulkChunkSlack)
		defer release() // after the ingester is done (applied is read below)
		free <- &chunk{buf: buf, ord: make([]sortKey, 0, chunkRecords), tmp: make([]sortKey, 0, chunkRecords),
			live: make([]sortKey, 0, chunkRecords)}
	}
	applied := make(chan error, 1)
	var doneRecords, doneNext atomic.Int64
	doneNext.Store(pr.From)
	go func() {
		var err error
		g := generation{part: part, tableKeys: c.tableKeys}
		defer func() {
			// Before applied: the chunk buffers are unmapped after it,
			// and a time index table may still be reading one.
			g.discard()
			applied <- err
		}()
		// ingest merges g and its final chunk last (nil: none).
		ingest := func(last *chunk) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := g.records
			if last != nil {
				n += int64(last.n)
			}
			if err := store.ingestGeneration(&g, last); err != nil {
				return err
			}
			doneRecords.Add(n)
			doneNext.Store(g.cp.Next)
			return nil
		}
		// held is a chunk kept in memory (not spilled) because the next
		// one is likely the last: both are then merged from memory.
		var held *chunk
		release := func() {
			if held != nil {
				free <- held
				held = nil
			}
		}
		for ch := range work {
			if err != nil {
				continue // drain
			}
			if err = ctx.Err(); err == nil {
				switch {
				case ch.final || len(g.runs)+len(g.mem)+1 >= BulkGenerationChunks:
					err = ingest(ch) // merged from memory, not spilled
					release()
				case ch.nextFinal && held == nil:
					err = store.hold(&g, ch)
					held, ch = ch, nil
				default:
					if held != nil {
						// Not the last after all: the reader needs a buffer.
						err = store.spillHeld(&g)
						release()
					}
					if err == nil {
						err = store.spill(&g, ch)
					}
				}
			}
			if err != nil {
				cancel()
			} else if ch != nil {
				free <- ch // its records are in a run or the LSM: the reader may reuse it
			}
		}
		if err == nil && (len(g.runs) > 0 || held != nil) {
			err = ingest(nil) // the reader stopped early: keep what was read
		}
	}()
	cur := <-free
	cur.reset(part)
	// cut hands the chunk read so far to the ingester with next as its
	// checkpoint and waits for a free one.
	cut := func(next int64, final bool) error {
		cp.Next = next
		cur.cp, cur.final = cp, final
		select {
		case work <- cur:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case cur = <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
		cur.reset(part)
		return nil
	}
	lastReport := time.Now()
	err := kafkax.ReadCommittedReused(ctx, cl, c.Topic, map[int32]int64{part: pr.From}, map[int32]int64{part: end},
		func(r *kgo.Record) error {
			ts := r.Timestamp.UnixMilli()
			cp.StreamTime = max(cp.StreamTime, ts)
			if c.Filter != nil && !c.Filter(r, cp.StreamTime) {
				return nil
			}
			switch {
			case r.Value == nil:
				cur.add(r.Key, nil, ts)
			case c.Encode != nil:
				cur.addEncoded(r, ts, c.Encode)
			default:
				cur.add(r.Key, r.Value, ts)
			}
			if cur.n >= chunkRecords || len(cur.buf) >= BulkChunkBytes {
				// Every record below r.Offset+1 has been seen. If fewer
				// offsets are left than this chunk holds records, the
				// next chunk is likely the last (records of a changelog
				// are of similar sizes).
				cur.nextFinal = end-(r.Offset+1) <= int64(cur.n)
				return cut(r.Offset+1, false)
			}
			return nil
		},
		func(_ int32, next, _ int64) {
			if report != nil && time.Since(lastReport) >= time.Second {
				pr.Records, pr.Next = doneRecords.Load(), doneNext.Load()
				report(*pr)
				lastReport = time.Now()
			}
		})
	if err == nil {
		err = cut(end, true)
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
