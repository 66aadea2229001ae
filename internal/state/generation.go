package state

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
)

// BulkGenerationChunks is how many chunks a bulk restore collects as sorted
// runs on disk before merging them into one table and ingesting it with
// its checkpoint. Ingesting every chunk on its own gave Pebble overlapping
// tables (keys arrive in random order) that it then had to compact, which
// cost more than writing them; a merged generation does not overlap
// itself, so a restore that fits in one lands in the bottom level without
// any compaction. It also bounds what a crash in the middle of a restore
// loses: at most one generation, read again from the checkpoint. 32
// chunks are about 1 GiB of runs on disk, some 10M small entries.
const BulkGenerationChunks = 32

// generation is the part of a bulk restore read since the last checkpoint:
// sorted runs of its chunks (spill files in the order read) and their time
// index tables, not in the LSM yet.
type generation struct {
	part    int32
	runs    []string
	tables  []string // time index tables, then data tables: ingested together
	cp      Checkpoint
	records int64
	// splits cut the key space into ranges merged in parallel (taken from
	// the first run's keys); bounds[i][j] is where run i's records of range
	// j start.
	splits [][]byte
	bounds [][]int64
	// mem are chunks merged from memory (newer than the runs, in order),
	// and memBounds[i] where their ranges start in mem[i].ord.
	mem       []*chunk
	memBounds [][]int
	// writing are time index tables still being written (startTimeTable).
	writing []pendingTable
	// tableKeys is the most keys a data table holds (0: bulkTableKeys).
	tableKeys int
	// shared is what every user key of the generation starts with (so
	// far), and sharedSet whether a chunk has set it: the merge compares
	// keys by the 8 bytes after it first.
	shared    []byte
	sharedSet bool
}

// bulkTableKeys is the most keys a data table of a bulk restore holds: a
// generation's key ranges are cut into tables of at most this many keys.
// One table per range made tables of 5M keys at 10M, whose bloom filter
// (6 MiB, built at the end with a random write per probe) was 8% of the
// restore's CPU in cache misses. 256k keys make tables of some 12 MiB
// whose filter (320 KiB) fits a core's L2 cache: at 10M keys its build
// took 1.9% of the CPU instead of 3.2% with 1M-key tables, on the same
// disk. Tables under Pebble's target size for their level are merged by
// its compactions when they have to rewrite them anyway.
const bulkTableKeys = 1 << 18

// spill sorts c and adds it to g: its last record of each key, in key
// order, to a run file (the chunk's own record layout, unsynced: runs are
// read back by this process and removed; Open wipes leftovers), and its
// time index as a table, written in parallel.
func (s *Store) spill(g *generation, c *chunk) error {
	g.take(c)
	if c.n == 0 {
		return nil
	}
	c.sort()
	return s.writeSorted(g, c, true)
}

// hold adds sorted c to g as a chunk to merge from memory, and starts
// writing its time index table: the caller keeps c until g is ingested, or
// has its run written by spillHeld. A restore holds the chunk before its
// last one (as well as the last one), so a restore of two chunks writes no
// run at all. The table is written in the background because the reader
// is usually done by then: the final merge can start while it is written,
// instead of one core writing it while the other waits.
func (s *Store) hold(g *generation, c *chunk) error {
	g.take(c)
	if c.n == 0 {
		return nil
	}
	c.sort()
	g.split(c)
	if err := s.startTimeTable(g, c); err != nil {
		return err
	}
	g.mem = append(g.mem, c)
	return nil
}

// startTimeTable starts writing sorted c's time index table in the
// background; waitTables waits for it (and must before c is reused).
func (s *Store) startTimeTable(g *generation, c *chunk) error {
	files, err := s.ingestPaths(c.part, "-time.sst")
	if err != nil {
		return err
	}
	pt := pendingTable{path: files[0], c: c, done: make(chan error, 1)}
	go func() { pt.done <- s.writeTimeTable(pt.path, c) }()
	g.writing = append(g.writing, pt)
	return nil
}

// pendingTable is a chunk's time index table being written.
type pendingTable struct {
	path string
	c    *chunk
	done chan error
}

// waitTables waits for the time index tables being written and adds them
// to g.tables; it returns the first error.
func (g *generation) waitTables() error {
	var first error
	for _, pt := range g.writing {
		err := <-pt.done
		if len(pt.c.live) > 0 || err != nil {
			g.tables = append(g.tables, pt.path)
		}
		if err != nil && first == nil {
			first = err
		}
	}
	g.writing = g.writing[:0]
	return first
}

// spillHeld writes the run of the chunks g holds (hold), which the caller
// may then reuse.
func (s *Store) spillHeld(g *generation) error {
	var err error
	for _, c := range g.mem {
		if err = s.writeSorted(g, c, false); err != nil {
			break
		}
	}
	g.mem = g.mem[:0]
	// Waited for even after an error: they read the chunks.
	return errors.Join(err, g.waitTables())
}

// writeSorted writes sorted c's run, and its time index table (in
// parallel) if timeTable; the caller may reuse c when it returns.
func (s *Store) writeSorted(g *generation, c *chunk, timeTable bool) error {
	files, err := s.ingestPaths(c.part, ".run")
	if err != nil {
		return err
	}
	if timeTable {
		if err := s.startTimeTable(g, c); err != nil {
			return err
		}
	}
	g.split(c)
	bounds, err := writeRun(files[0], c, g.splits)
	g.runs = append(g.runs, files[0]) // removed with the generation, written or not
	g.bounds = append(g.bounds, bounds)
	// Waited for even after an error: the table reads c.
	return errors.Join(err, g.waitTables())
}

// take adds c's checkpoint and record count to g.
func (g *generation) take(c *chunk) {
	g.part = c.part
	g.cp = c.cp
	g.cp.StreamTime = max(g.cp.StreamTime, c.maxTS)
	g.records += int64(c.n)
}

// split sets g's key range splits from sorted c's keys, unless set, and
// narrows g.shared to what c's keys share.
func (g *generation) split(c *chunk) {
	first := c.userKey(0)[:c.common]
	if !g.sharedSet {
		g.shared, g.sharedSet = append(g.shared[:0], first...), true
	} else {
		n := 0
		for n < len(g.shared) && n < len(first) && g.shared[n] == first[n] {
			n++
		}
		g.shared = g.shared[:n]
	}
	if len(g.splits) > 0 {
		return
	}
	for j := 1; j < mergeWays(); j++ {
		k := c.userKey(c.ord[j*len(c.ord)/mergeWays()].off)
		g.splits = append(g.splits, append(dataKey(c.part, nil), k...))
	}
}

// mergeWays is how many key ranges of a generation are merged in parallel.
func mergeWays() int { return min(max(runtime.GOMAXPROCS(0), 1), 4) }

// writeRun writes c's last record of each key in key order to path, and
// returns where the records of each range (split by splits) start.
func writeRun(path string, c *chunk, splits [][]byte) ([]int64, error) {
	// Owner-only, like the store: runs hold the same entries.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	bounds := []int64{0}
	var pos int64
	var sink byte
	touched := 0
	for i, o := range c.ord {
		sink ^= c.touchNext(i, len(c.ord), &touched)
		if c.overridden(i) {
			continue
		}
		k, _, _, next := c.at(o.off)
		for len(bounds) <= len(splits) && bytes.Compare(k, splits[len(bounds)-1]) >= 0 {
			bounds = append(bounds, pos)
		}
		n, err := w.Write(c.buf[o.off:next])
		if err != nil {
			f.Close()
			return nil, err
		}
		pos += int64(n)
	}
	for len(bounds) <= len(splits) {
		bounds = append(bounds, pos)
	}
	bounds = append(bounds, pos)
	c.sink = sink
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, err
	}
	return bounds, f.Close()
}

// discard removes g's files and empties it; its checkpoint stays (an
// empty generation ingested next only writes it again). It waits for the
// tables still being written first: they read chunks the caller reuses.
func (g *generation) discard() {
	g.waitTables()
	for _, p := range append(g.runs, g.tables...) {
		os.Remove(p)
	}
	*g = generation{part: g.part, cp: g.cp, tableKeys: g.tableKeys, shared: g.shared[:0]}
}

// ingestGeneration merges g's runs, and last (its final chunk, nil if
// none) from memory, into tables (a later record of a key wins), has Pebble
// ingest them with the time index tables, then writes g's checkpoint,
// synced: the checkpoint never covers data that is not in the LSM. The
// final chunk is not spilled: writing it as a run only to read it back
// cost a generation's last chunk (at 1M keys, half the restore) a write,
// a read and a copy of every record. last is free again on return.
func (s *Store) ingestGeneration(g *generation, last *chunk) error {
	defer g.discard() // waits for the time index tables: they read last
	if last != nil {
		g.take(last)
		if last.n > 0 {
			last.sort()
			g.split(last)
			g.mem = append(g.mem, last)
			if err := s.startTimeTable(g, last); err != nil {
				return err
			}
		}
	}
	g.memBounds = g.memBounds[:0]
	for _, c := range g.mem {
		g.memBounds = append(g.memBounds, c.bounds(g.splits))
	}
	err := errors.Join(s.writeData(g), g.waitTables())
	if err == nil && len(g.tables) > 0 {
		err = s.db.Ingest(context.Background(), g.tables)
	}
	if err != nil {
		return fmt.Errorf("state: bulk loading partition %d: %w", g.part, err)
	}
	return s.apply(g.part, nil, g.cp, pebble.Sync)
}

// writeData writes g's data tables, merging its key ranges in parallel
// (the ranges do not overlap, so neither do their tables), and adds them to
// g.tables.
func (s *Store) writeData(g *generation) error {
	if len(g.runs) == 0 && len(g.mem) == 0 {
		return nil
	}
	ways := len(g.splits) + 1
	errs := make(chan error, ways)
	out := make([]dataTables, ways)
	for j := range ways {
		out[j] = dataTables{s: s, part: g.part, max: g.tableKeys}
		if out[j].max <= 0 {
			out[j].max = bulkTableKeys
		}
		if g.rangeEmpty(j) {
			errs <- nil
			continue
		}
		go func() {
			err := mergeRuns(g, j, &out[j])
			errs <- errors.Join(err, out[j].close())
		}()
	}
	var first error
	for range ways {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	for _, o := range out {
		g.tables = append(g.tables, o.paths...) // removed with g, written or not
	}
	return first
}

// dataTables writes one key range's records, in key order, as tables of
// at most max keys each.
type dataTables struct {
	s     *Store
	part  int32
	max   int
	w     *sstable.Writer
	n     int
	paths []string
}

// add writes the record (value nil: a deletion), starting a table first if
// none is open or the open one is full.
func (d *dataTables) add(k, v []byte) error {
	if d.w == nil || d.n >= d.max {
		if err := d.close(); err != nil {
			return err
		}
		ps, err := d.s.ingestPaths(d.part, "-data.sst")
		if err != nil {
			return err
		}
		d.paths = append(d.paths, ps[0])
		if d.w, err = d.s.newTable(ps[0], false); err != nil {
			return err
		}
		d.n = 0
	}
	d.n++
	if v == nil {
		return d.w.Delete(k)
	}
	return d.w.Set(k, v)
}

// close finishes (and syncs) the open table, if any.
func (d *dataTables) close() error {
	if d.w == nil {
		return nil
	}
	w := d.w
	d.w = nil
	return w.Close()
}

// rangeEmpty reports whether no run has a record in key range j (splits
// taken from a chunk of few distinct keys can repeat): Pebble does not
// ingest empty tables.
func (g *generation) rangeEmpty(j int) bool {
	for _, b := range g.bounds {
		if b[j] < b[j+1] {
			return false
		}
	}
	for _, b := range g.memBounds {
		if b[j] < b[j+1] {
			return false
		}
	}
	return true
}

// bounds returns where each key range (split by splits) starts in sorted
// c's order, and its end.
func (c *chunk) bounds(splits [][]byte) []int {
	b := make([]int, 0, len(splits)+2)
	b = append(b, 0)
	for _, sp := range splits {
		b = append(b, sort.Search(len(c.ord), func(i int) bool {
			k, _, _, _ := c.at(c.ord[i].off)
			return bytes.Compare(k, sp) >= 0
		}))
	}
	return append(b, len(c.ord))
}

// runReader reads one run record by record: a run file, or (c set) the
// records c.ord[i:end] of a sorted chunk in memory.
type runReader struct {
	r    *bufio.Reader
	f    *os.File
	used int // bytes of r's buffer the current record occupies
	c    *chunk
	i    int
	end  int
	seq  int // run order: higher is newer
	// touched is where the chunk's next batch of records to load starts.
	touched int
	skip    int // bytes every key starts with (generation.shared and the prefix)
	pfx     uint64
	sink    byte
	rec     []byte
	key     []byte // Pebble key
	val     []byte // Pebble value, nil for a deletion
	done    bool
}

// next moves to the next record. The key and value of the current one
// stay valid until then (they point into the reader's buffer or the chunk).
func (rr *runReader) next() error {
	if rr.c != nil {
		rr.sink ^= rr.c.touchNext(rr.i, rr.end, &rr.touched)
		for rr.i < rr.end && rr.c.overridden(rr.i) {
			rr.i++
		}
		if rr.i >= rr.end {
			rr.done = true
			return nil
		}
		rr.key, rr.val, _, _ = rr.c.at(rr.c.ord[rr.i].off)
		rr.pfx = keyPrefix64(rr.key, rr.skip)
		rr.i++
		return nil
	}
	if rr.used > 0 {
		rr.r.Discard(rr.used)
		rr.used = 0
	}
	h, err := rr.r.Peek(recHeader)
	if err != nil {
		if err == io.EOF && len(h) == 0 {
			rr.done = true
			return nil
		}
		return fmt.Errorf("run %s: %w", rr.f.Name(), io.ErrUnexpectedEOF)
	}
	klen := int(binary.LittleEndian.Uint32(h))
	vlen := int32(binary.LittleEndian.Uint32(h[4:]))
	n := recHeader + prefixLen + klen + 8 + max(int(vlen), 0)
	// Read in place (no copy) unless the record exceeds the buffer.
	rec, err := rr.r.Peek(n)
	switch {
	case err == nil:
		rr.used = n
	case err == bufio.ErrBufferFull:
		rr.rec = slices.Grow(rr.rec[:0], n)[:n]
		if _, err := io.ReadFull(rr.r, rr.rec); err != nil {
			return fmt.Errorf("run %s: %w", rr.f.Name(), err)
		}
		rec = rr.rec
	default:
		return fmt.Errorf("run %s: %w", rr.f.Name(), io.ErrUnexpectedEOF)
	}
	ke := recHeader + prefixLen + klen
	rr.key, rr.val = rec[recHeader:ke:ke], nil
	if vlen >= 0 {
		rr.val = rec[ke:n:n]
	}
	rr.pfx = keyPrefix64(rr.key, rr.skip)
	return nil
}

// keyPrefix64 is the 8 bytes of k after skip as a big-endian integer
// (zero-padded): keys that all start with the same skip bytes compare as
// their prefixes do, unless those are equal.
func keyPrefix64(k []byte, skip int) uint64 {
	if len(k) >= skip+8 {
		return binary.BigEndian.Uint64(k[skip:])
	}
	var b [8]byte
	copy(b[:], k[skip:])
	return binary.BigEndian.Uint64(b[:])
}

// runHeap orders readers by key, newest run first among equal keys. It is
// sifted by hand: container/heap's calls through an interface cost more
// than the comparisons themselves with the few runs of a restore.
type runHeap []*runReader

func (h runHeap) less(i, j int) bool {
	a, b := h[i], h[j]
	if a.pfx != b.pfx { // most comparisons, without reading the keys
		return a.pfx < b.pfx
	}
	if c := bytes.Compare(a.key, b.key); c != 0 {
		return c < 0
	}
	return a.seq > b.seq
}

// down moves h[i] down to its place.
func (h runHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// mergeRuns writes the records of key range j of g's sorted runs (and its
// chunks in memory) to out in key order, keeping the newest record of each
// key.
func mergeRuns(g *generation, j int, out *dataTables) error {
	h := make(runHeap, 0, len(g.runs)+len(g.mem))
	skip := prefixLen + len(g.shared)
	for i, p := range g.runs {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		lo, hi := g.bounds[i][j], g.bounds[i][j+1]
		rr := &runReader{r: bufio.NewReaderSize(io.NewSectionReader(f, lo, hi-lo), 256<<10), f: f, seq: i, skip: skip}
		h = append(h, rr)
	}
	for i, c := range g.mem {
		b := g.memBounds[i]
		h = append(h, &runReader{c: c, i: b[j], end: b[j+1], seq: len(g.runs) + i, skip: skip})
	}
	live := h[:0]
	for _, rr := range h {
		if err := rr.next(); err != nil {
			return err
		}
		if !rr.done {
			live = append(live, rr)
		}
	}
	h = live
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
	var last []byte
	for len(h) > 0 {
		rr := h[0]
		if last == nil || !bytes.Equal(rr.key, last) { // else an older record of the key just written
			last = append(last[:0], rr.key...)
			if err := out.add(rr.key, rr.val); err != nil {
				return err
			}
		}
		if err := rr.next(); err != nil {
			return err
		}
		if rr.done {
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		h.down(0)
	}
	return nil
}
