package state

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"

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
	times   []string
	cp      Checkpoint
	records int64
	// splits cut the key space into ranges merged in parallel (taken from
	// the first run's keys); bounds[i][j] is where run i's records of range
	// j start.
	splits [][]byte
	bounds [][]int64
}

// spill sorts c and adds it to g: its last record of each key, in key
// order, to a run file (the chunk's own record layout, unsynced: runs are
// read back by this process and removed; Open wipes leftovers), and its
// time index as a table, written in parallel.
func (s *Store) spill(g *generation, c *chunk) error {
	g.part = c.part
	g.cp = c.cp
	g.cp.StreamTime = max(g.cp.StreamTime, c.maxTS)
	g.records += int64(c.n)
	if c.n == 0 {
		return nil
	}
	c.sort()
	files, err := s.ingestPaths(c.part, ".run", "-time.sst")
	if err != nil {
		return err
	}
	rpath, tpath := files[0], files[1]
	timeErr := make(chan error, 1)
	go func() { timeErr <- s.writeTimeTable(tpath, c) }()
	if len(g.splits) == 0 {
		for j := 1; j < mergeWays(); j++ {
			k := c.userKey(c.ord[j*len(c.ord)/mergeWays()].off)
			g.splits = append(g.splits, append(dataKey(c.part, nil), k...))
		}
	}
	bounds, err := writeRun(rpath, c, g.splits)
	terr := <-timeErr
	g.runs = append(g.runs, rpath) // removed with the generation, written or not
	g.bounds = append(g.bounds, bounds)
	if len(c.live) > 0 || terr != nil {
		g.times = append(g.times, tpath)
	}
	if err != nil {
		return err
	}
	return terr
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
	for i, o := range c.ord {
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
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, err
	}
	return bounds, f.Close()
}

// discard removes g's files and empties it; its checkpoint stays (an
// empty generation ingested next only writes it again).
func (g *generation) discard() {
	for _, p := range append(g.runs, g.times...) {
		os.Remove(p)
	}
	*g = generation{part: g.part, cp: g.cp}
}

// ingestGeneration merges g's runs into one table (a later run's record
// of a key wins), has Pebble ingest it with the time index tables, then
// writes g's checkpoint, synced: the checkpoint never covers data that is
// not in the LSM.
func (s *Store) ingestGeneration(g *generation) error {
	defer g.discard()
	paths := g.times
	if len(g.runs) > 0 {
		// One table per key range, merged in parallel; the ranges do not
		// overlap, so neither do the tables.
		ways := len(g.splits) + 1
		errs := make(chan error, ways)
		for j := range ways {
			if g.rangeEmpty(j) {
				errs <- nil
				continue
			}
			ps, err := s.ingestPaths(g.part, "-data.sst")
			if err != nil {
				errs <- err
				continue
			}
			dpath := ps[0]
			defer os.Remove(dpath)
			paths = append(paths, dpath)
			go func() {
				errs <- s.writeTable(dpath, true, func(w *sstable.Writer) error { return mergeRuns(g, j, w) })
			}()
		}
		for range ways {
			if err := <-errs; err != nil {
				return fmt.Errorf("state: bulk loading partition %d: %w", g.part, err)
			}
		}
	}
	if len(paths) > 0 {
		if err := s.db.Ingest(context.Background(), paths); err != nil {
			return fmt.Errorf("state: bulk loading partition %d: %w", g.part, err)
		}
	}
	return s.apply(g.part, nil, g.cp, pebble.Sync)
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
	return true
}

// runReader reads one run file record by record.
type runReader struct {
	r    *bufio.Reader
	f    *os.File
	seq  int // run order: higher is newer
	rec  []byte
	key  []byte // Pebble key
	val  []byte // Pebble value, nil for a deletion
	done bool
}

func (rr *runReader) next() error {
	var h [recHeader]byte
	if _, err := io.ReadFull(rr.r, h[:]); err != nil {
		if err == io.EOF {
			rr.done = true
			return nil
		}
		return err
	}
	klen := binary.LittleEndian.Uint32(h[:])
	vlen := int32(binary.LittleEndian.Uint32(h[4:]))
	n := prefixLen + int(klen) + 8 + max(int(vlen), 0)
	if cap(rr.rec) < n {
		rr.rec = make([]byte, n, max(n, 2*cap(rr.rec)))
	}
	rr.rec = rr.rec[:n]
	if _, err := io.ReadFull(rr.r, rr.rec); err != nil {
		return fmt.Errorf("run %s: %w", rr.f.Name(), err)
	}
	ke := prefixLen + int(klen)
	rr.key, rr.val = rr.rec[:ke], nil
	if vlen >= 0 {
		rr.val = rr.rec[ke:]
	}
	return nil
}

// runHeap orders readers by key, newest run first among equal keys.
type runHeap []*runReader

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	if c := bytes.Compare(h[i].key, h[j].key); c != 0 {
		return c < 0
	}
	return h[i].seq > h[j].seq
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeRuns writes the records of key range j of g's sorted runs to w in
// key order, keeping the newest run's record of each key.
func mergeRuns(g *generation, j int, w *sstable.Writer) error {
	h := make(runHeap, 0, len(g.runs))
	for i, p := range g.runs {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		lo, hi := g.bounds[i][j], g.bounds[i][j+1]
		rr := &runReader{r: bufio.NewReaderSize(io.NewSectionReader(f, lo, hi-lo), 256<<10), f: f, seq: i}
		if err := rr.next(); err != nil {
			return err
		}
		if !rr.done {
			h = append(h, rr)
		}
	}
	heap.Init(&h)
	var last []byte
	for len(h) > 0 {
		rr := h[0]
		if last == nil || !bytes.Equal(rr.key, last) { // else an older record of the key just written
			last = append(last[:0], rr.key...)
			var err error
			if rr.val == nil {
				err = w.Delete(rr.key)
			} else {
				err = w.Set(rr.key, rr.val)
			}
			if err != nil {
				return err
			}
		}
		if err := rr.next(); err != nil {
			return err
		}
		if rr.done {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
	return nil
}
