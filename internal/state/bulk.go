package state

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
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
	var c chunk
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

// ingestChunk loads c as Ingest does, reusing c's sort buffers.
func (s *Store) ingestChunk(c *chunk) error {
	cp := c.cp
	for i := range c.recs {
		cp.StreamTime = max(cp.StreamTime, c.recs[i].ts)
	}
	if len(c.recs) > 0 {
		if err := s.ingestTables(c); err != nil {
			return fmt.Errorf("state: bulk loading partition %d: %w", c.part, err)
		}
	}
	// Synced: a bulk load is expensive to redo, an fsync per chunk is not.
	return s.apply(c.part, nil, cp, pebble.Sync)
}

// chunk is a batch of records for a bulk load, laid out flat so that the
// garbage collector has no pointers to scan and the buffers are reused
// from one chunk to the next. Each record is stored in buf as
//
//	'd' part(4) key ts(8) value
//
// which is exactly its Pebble key followed by its Pebble value: the data
// table is written straight from buf, without copying.
type chunk struct {
	part int32
	buf  []byte
	recs []recPos
	cp   Checkpoint
	// Sort scratch, reused.
	ord  []sortKey
	last []int32
	live []sortKey
}

// recPos locates one record in chunk.buf.
type recPos struct {
	off  uint32 // of the Pebble key ('d' part key)
	klen uint32 // of the user key
	vlen int32  // of the value; -1 is a deletion
	ts   int64
}

func (c *chunk) reset(part int32) {
	c.part, c.buf, c.recs, c.cp = part, c.buf[:0], c.recs[:0], Checkpoint{}
}

// add appends a record (value nil: a deletion).
func (c *chunk) add(key, value []byte, ts int64) {
	r := recPos{off: uint32(len(c.buf)), klen: uint32(len(key)), vlen: int32(len(value)), ts: ts}
	if value == nil {
		r.vlen = -1
	}
	c.buf = append(c.buf, kindData, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(c.buf[r.off+1:], uint32(c.part))
	c.buf = append(c.buf, key...)
	c.buf = binary.BigEndian.AppendUint64(c.buf, uint64(ts))
	c.buf = append(c.buf, value...)
	c.recs = append(c.recs, r)
}

// addEncoded appends kr with the value enc appends (Changelog.Encode).
func (c *chunk) addEncoded(kr *kgo.Record, ts int64, enc func([]byte, *kgo.Record) []byte) {
	r := recPos{off: uint32(len(c.buf)), klen: uint32(len(kr.Key)), ts: ts}
	c.buf = append(c.buf, kindData, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(c.buf[r.off+1:], uint32(c.part))
	c.buf = append(c.buf, kr.Key...)
	c.buf = binary.BigEndian.AppendUint64(c.buf, uint64(ts))
	v0 := len(c.buf)
	c.buf = enc(c.buf, kr)
	r.vlen = int32(len(c.buf) - v0)
	c.recs = append(c.recs, r)
}

func (c *chunk) key(i int32) []byte {
	r := &c.recs[i]
	k := r.off + prefixLen
	return c.buf[k : k+r.klen : k+r.klen]
}

// pebbleKV is record i's Pebble key and value, slices of buf.
func (c *chunk) pebbleKV(i int32) (k, v []byte) {
	r := &c.recs[i]
	ke := r.off + prefixLen + r.klen
	k = c.buf[r.off:ke:ke]
	if r.vlen < 0 {
		return k, nil
	}
	ve := ke + 8 + uint32(r.vlen)
	return k, c.buf[ke:ve:ve]
}

// ingestTables sorts c and ingests it as two tables, written in parallel:
// the entries in key order and the time index in (ts, key) order.
func (s *Store) ingestTables(c *chunk) error {
	c.sortedLast()
	dir := filepath.Join(s.dir, ingestDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	n := ingestSeq.Add(1)
	dpath := filepath.Join(dir, fmt.Sprintf("p%d-%d-data.sst", c.part, n))
	tpath := filepath.Join(dir, fmt.Sprintf("p%d-%d-time.sst", c.part, n))
	defer os.Remove(dpath)
	defer os.Remove(tpath)
	timeErr := make(chan error, 1)
	go func() { timeErr <- s.writeTimeTable(tpath, c) }()
	err := s.writeTable(dpath, true, func(w *sstable.Writer) error {
		for _, i := range c.last {
			k, v := c.pebbleKV(i)
			if v == nil {
				if err := w.Delete(k); err != nil {
					return err
				}
				continue
			}
			if err := w.Set(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	terr := <-timeErr
	if err != nil {
		return err
	}
	if terr != nil {
		return terr
	}
	paths := []string{dpath}
	if len(c.live) > 0 {
		paths = append(paths, tpath)
	}
	return s.db.Ingest(context.Background(), paths)
}

// writeTimeTable writes the time index of c's live records (the last
// put of each key, when not a deletion) at path, if there are any. The
// records are visited in changelog order, nearly time order already, so
// the sort is cheap.
func (s *Store) writeTimeTable(path string, c *chunk) error {
	isLast := make([]bool, len(c.recs))
	for _, i := range c.last {
		if c.recs[i].vlen >= 0 {
			isLast[i] = true
		}
	}
	c.live = c.live[:0]
	for i := range c.recs {
		if isLast[i] {
			c.live = append(c.live, sortKey{pfx: uint64(c.recs[i].ts) ^ (1 << 63), idx: int32(i)})
		}
	}
	if len(c.live) == 0 {
		return nil
	}
	slices.SortFunc(c.live, func(a, b sortKey) int {
		if c := cmp.Compare(a.pfx, b.pfx); c != 0 {
			return c
		}
		return bytes.Compare(c.key(a.idx), c.key(b.idx))
	})
	return s.writeTable(path, false, func(w *sstable.Writer) error {
		var k []byte
		for _, o := range c.live {
			k = appendTimeKey(k[:0], c.part, c.recs[o.idx].ts, c.key(o.idx))
			if err := w.Set(k, nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// sortKey orders records without chasing pointers on most comparisons: pfx
// holds 8 bytes of the key (after the prefix every key of the chunk
// shares) or the timestamp, compared as an integer; only ties look at the
// keys themselves.
type sortKey struct {
	pfx uint64
	idx int32
}

// sortedLast sets c.last to the positions of c's records in key order,
// keeping only the last record of each key.
func (c *chunk) sortedLast() {
	first := c.key(0)
	common := len(first)
	for i := 1; i < len(c.recs) && common > 0; i++ {
		k, n := c.key(int32(i)), 0
		for n < common && n < len(k) && k[n] == first[n] {
			n++
		}
		common = n
	}
	c.ord = slices.Grow(c.ord[:0], len(c.recs))[:len(c.recs)]
	for i := range c.recs {
		var b [8]byte
		copy(b[:], c.key(int32(i))[common:])
		c.ord[i] = sortKey{pfx: binary.BigEndian.Uint64(b[:]), idx: int32(i)}
	}
	slices.SortFunc(c.ord, func(a, b sortKey) int {
		if x := cmp.Compare(a.pfx, b.pfx); x != 0 {
			return x
		}
		if x := bytes.Compare(c.key(a.idx), c.key(b.idx)); x != 0 {
			return x
		}
		return cmp.Compare(a.idx, b.idx)
	})
	c.last = c.last[:0]
	for i, o := range c.ord {
		if i+1 < len(c.ord) && o.pfx == c.ord[i+1].pfx && bytes.Equal(c.key(o.idx), c.key(c.ord[i+1].idx)) {
			continue
		}
		c.last = append(c.last, o.idx)
	}
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
// Two chunk buffers take turns, so a restore allocates them once.
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
		free <- &chunk{buf: buf, recs: make([]recPos, 0, chunkRecords)}
	}
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
				err = store.ingestChunk(ch)
			}
			if err != nil {
				cancel()
				continue
			}
			doneRecords.Add(int64(len(ch.recs)))
			doneNext.Store(ch.cp.Next)
			free <- ch
		}
		applied <- err
	}()
	cur := <-free
	cur.reset(part)
	// cut hands the chunk read so far to the ingester with next as its
	// checkpoint and waits for a free one.
	cut := func(next int64) error {
		cp.Next = next
		cur.cp = cp
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
	err := kafkax.ReadCommitted(ctx, cl, c.Topic, map[int32]int64{part: pr.From}, map[int32]int64{part: end},
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
			if len(cur.recs) >= chunkRecords || len(cur.buf) >= BulkChunkBytes {
				// Every record below r.Offset+1 has been seen.
				return cut(r.Offset + 1)
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
