package state

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"os"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/twmb/franz-go/pkg/kgo"
)

// chunk is a batch of records for a bulk load, laid out flat in one
// buffer so that the garbage collector has nothing to scan and the buffer
// is reused from one chunk to the next. Each record is
//
//	klen(4) vlen(4, -1: deletion) | 'd' part(4) key | ts(8) value
//
// where the middle part is the record's Pebble key and the last its Pebble
// value: the data table is written straight from buf, and a record is
// read at one place (one cache miss when visited in key order).
type chunk struct {
	part      int32
	buf       []byte
	n         int   // records
	maxTS     int64 // newest record timestamp
	cp        Checkpoint
	final     bool // the last chunk of a restore
	nextFinal bool // the next chunk is likely the last
	sink      byte // touchAhead's loads, kept so that the compiler keeps them
	common    int  // bytes every user key of the chunk starts with (sort)
	// Sort scratch, reused.
	ord    []sortKey
	groups []timeGroup // of the time index (timegroup.go)
	dead   []uint32    // offsets of records a later record of the same key overrides, ascending
	live   []sortKey
	tmp    []sortKey
}

const recHeader = 8

// sortKey orders records without reading them on most comparisons: pfx
// holds 8 bytes of the key (after the prefix every key of the chunk
// shares) or the timestamp, compared as an integer; only ties look at the
// records. off is the record's offset in the chunk, i.e. its arrival order.
type sortKey struct {
	pfx uint64
	off uint32
}

func (c *chunk) reset(part int32) {
	c.part, c.buf, c.n, c.maxTS, c.cp, c.final, c.nextFinal = part, c.buf[:0], 0, 0, Checkpoint{}, false, false
}

// begin appends a record's header and Pebble key, and returns its offset.
func (c *chunk) begin(key []byte, ts int64) int {
	off := len(c.buf)
	c.buf = binary.LittleEndian.AppendUint32(c.buf, uint32(len(key)))
	c.buf = append(c.buf, 0, 0, 0, 0, kindData)
	c.buf = binary.BigEndian.AppendUint32(c.buf, uint32(c.part))
	c.buf = append(c.buf, key...)
	c.buf = binary.BigEndian.AppendUint64(c.buf, uint64(ts))
	c.n++
	c.maxTS = max(c.maxTS, ts)
	return off
}

// add appends a record (value nil: a deletion).
func (c *chunk) add(key, value []byte, ts int64) {
	off := c.begin(key, ts)
	vlen := uint32(len(value))
	if value == nil {
		vlen = 1<<32 - 1 // -1
	}
	binary.LittleEndian.PutUint32(c.buf[off+4:], vlen)
	c.buf = append(c.buf, value...)
}

// addEncoded appends kr with the value enc appends (Changelog.Encode).
func (c *chunk) addEncoded(kr *kgo.Record, ts int64, enc func([]byte, *kgo.Record) []byte) {
	off := c.begin(kr.Key, ts)
	v0 := len(c.buf)
	c.buf = enc(c.buf, kr)
	binary.LittleEndian.PutUint32(c.buf[off+4:], uint32(len(c.buf)-v0))
}

// at returns the record at off: its Pebble key, its Pebble value (nil for
// a deletion), its timestamp, and the offset of the next record.
func (c *chunk) at(off uint32) (k, v []byte, ts int64, next uint32) {
	klen := binary.LittleEndian.Uint32(c.buf[off:])
	vlen := int32(binary.LittleEndian.Uint32(c.buf[off+4:]))
	ks := off + recHeader
	ke := ks + prefixLen + klen
	k = c.buf[ks:ke:ke]
	ts = int64(binary.BigEndian.Uint64(c.buf[ke:]))
	if vlen < 0 {
		return k, nil, ts, ke + 8
	}
	ve := ke + 8 + uint32(vlen)
	return k, c.buf[ke:ve:ve], ts, ve
}

// touchBatch is how many records ahead in key order touchAhead loads:
// visiting a chunk in key order reads its records at random, two cache
// lines each (a record is longer than the 64 bytes of one). A load a few
// records ahead inside the visiting loop still stalled it (the loop's
// other work fills the reorder buffer before the load returns: 9% of a
// restore's CPU waited there); a tight loop loading a whole batch has all
// of its misses in flight at once.
const touchBatch = 32

// touchAhead loads the two first cache lines of the records c.ord[i:j]
// (clipped to the chunk), so that they are in the cache when visited.
func (c *chunk) touchAhead(i, j int) byte {
	j = min(j, len(c.ord))
	var s byte
	last := uint32(len(c.buf) - 1)
	for _, o := range c.ord[min(i, j):j] {
		s ^= c.buf[o.off] ^ c.buf[min(o.off+64, last)]
	}
	return s
}

// touchNext is the visiting loops' use of touchAhead (writeRun,
// runReader): once i reaches *next it loads the batch after i's, up to end
// (the first time, *next 0, i's own batch too), and moves *next one batch
// on.
func (c *chunk) touchNext(i, end int, next *int) byte {
	if i < *next {
		return 0 // the common case, inlined into the loop
	}
	return c.touchBatchAt(i, end, next)
}

// touchBatchAt is touchNext's load, once i has reached *next.
func (c *chunk) touchBatchAt(i, end int, next *int) byte {
	from := i + touchBatch
	if *next == 0 {
		from = i
	}
	*next = i + touchBatch
	return c.touchAhead(from, min(i+2*touchBatch, end))
}

// userKey is the key of the record at off.
func (c *chunk) userKey(off uint32) []byte {
	klen := binary.LittleEndian.Uint32(c.buf[off:])
	ks := off + recHeader + prefixLen
	return c.buf[ks : ks+klen : ks+klen]
}

// sort fills c.ord with every record in key order (arrival order among
// equal keys) and c.dead with the records that a later one of the same key
// overrides.
func (c *chunk) sort() {
	first := c.userKey(0)
	common := len(first)
	for off := uint32(0); off < uint32(len(c.buf)) && common > 0; {
		k, _, _, next := c.at(off)
		k = k[prefixLen:]
		n := 0
		for n < common && n < len(k) && k[n] == first[n] {
			n++
		}
		common, off = n, next
	}
	c.common = common
	c.ord = c.ord[:0]
	var and, or uint64 = ^uint64(0), 0
	for off := uint32(0); off < uint32(len(c.buf)); {
		k, _, _, next := c.at(off)
		var b [8]byte
		copy(b[:], k[prefixLen+common:])
		p := binary.BigEndian.Uint64(b[:])
		and, or = and&p, or|p
		c.ord = append(c.ord, sortKey{pfx: p, off: off})
		off = next
	}
	// Radix-sorted on the highest varying bits only, enough of them that
	// random keys rarely tie (about one pair in 8k records): that takes
	// half the passes of all 64 bits. Ties are ordered below by their whole
	// key; if they are not rare after all (keys that vary mostly in their
	// low bits), all bits are sorted.
	mask := highBits(and^or, bits.Len(uint(len(c.ord)))+12)
	c.tmp = radixSort(c.ord, c.tmp, mask)
	if maxRun(c.ord, mask) > 64 {
		mask = ^uint64(0)
		c.tmp = radixSort(c.ord, c.tmp, mask)
	}
	// Records sharing the sorted prefix bits (rare for keys that differ
	// early, such as hashes or UUIDs) are ordered by their whole key; the
	// radix sort is stable, so among equal keys arrival order is kept.
	for i := 0; i < len(c.ord); {
		j := i + 1
		for j < len(c.ord) && c.ord[j].pfx&mask == c.ord[i].pfx&mask {
			j++
		}
		if j-i > 1 {
			slices.SortStableFunc(c.ord[i:j], func(a, b sortKey) int {
				return bytes.Compare(c.userKey(a.off), c.userKey(b.off))
			})
		}
		i = j
	}
	c.dead = c.dead[:0]
	for i := 0; i+1 < len(c.ord); i++ {
		if c.overridden(i) {
			c.dead = append(c.dead, c.ord[i].off)
		}
	}
	slices.Sort(c.dead)
}

// overridden reports whether c.ord[i] has a later record of the same key.
func (c *chunk) overridden(i int) bool {
	return i+1 < len(c.ord) && c.ord[i].pfx == c.ord[i+1].pfx &&
		bytes.Equal(c.userKey(c.ord[i].off), c.userKey(c.ord[i+1].off))
}

// ingestChunk loads c as Ingest does, reusing c's sort buffers.
func (s *Store) ingestChunk(c *chunk) error {
	cp := c.cp
	cp.StreamTime = max(cp.StreamTime, c.maxTS)
	if c.n > 0 {
		if err := s.ingestTables(c); err != nil {
			return fmt.Errorf("state: bulk loading partition %d: %w", c.part, err)
		}
	}
	// Synced: a bulk load is expensive to redo, an fsync per chunk is not.
	return s.apply(c.part, nil, cp, pebble.Sync)
}

// ingestTables sorts c and ingests it as two tables, written in parallel:
// the entries in key order and the time index in (ts, key) order.
func (s *Store) ingestTables(c *chunk) error {
	c.sort()
	files, err := s.ingestPaths(c.part, "-data.sst", "-time.sst")
	if err != nil {
		return err
	}
	dpath, tpath := files[0], files[1]
	defer os.Remove(dpath)
	defer os.Remove(tpath)
	timeErr := make(chan error, 1)
	go func() { timeErr <- s.writeTimeTable(tpath, c) }()
	err = s.writeTable(dpath, false, func(w *sstable.Writer) error {
		for i, o := range c.ord {
			if c.overridden(i) {
				continue
			}
			k, v, _, _ := c.at(o.off)
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
// record of each key, when not a deletion) at path, as groups of records
// in changelog order (timegroup.go), if there are any. c.live holds the
// live records after it returns.
func (s *Store) writeTimeTable(path string, c *chunk) error {
	c.collectGroups()
	if len(c.live) == 0 {
		return nil
	}
	return s.writeTable(path, true, c.writeGroups)
}

// highBits returns the mask of bit positions from v's n-th highest set bit
// up (all of them if v has fewer set bits).
func highBits(v uint64, n int) uint64 {
	low := uint64(0)
	for ; n > 0 && v != 0; n-- {
		top := uint64(1) << (63 - bits.LeadingZeros64(v))
		low = top
		v &^= top
	}
	if v == 0 {
		return ^uint64(0)
	}
	return ^(low - 1)
}

// maxRun is the length of the longest run of keys equal under mask.
func maxRun(keys []sortKey, mask uint64) int {
	best := 0
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j].pfx&mask == keys[i].pfx&mask {
			j++
		}
		best, i = max(best, j-i), j
	}
	return best
}

// radixSort sorts keys by pfx&mask, stably (least significant digit first,
// 11 bits a pass, skipping digits every key shares), using tmp as scratch;
// it returns the scratch for reuse. A comparison sort of a chunk spent most
// of its time in calls to the comparison function.
func radixSort(keys, tmp []sortKey, mask uint64) []sortKey {
	if len(keys) < 256 {
		slices.SortStableFunc(keys, func(a, b sortKey) int { return cmp.Compare(a.pfx&mask, b.pfx&mask) })
		return tmp
	}
	var and, or uint64 = ^uint64(0), 0
	for _, k := range keys {
		and &= k.pfx
		or |= k.pfx
	}
	varying := (and ^ or) & mask // bits that differ between keys
	tmp = slices.Grow(tmp[:0], len(keys))[:len(keys)]
	src, dst := keys, tmp
	const digit = 11
	var count [1 << digit]int
	for shift := uint(0); shift < 64; shift += digit {
		if (varying>>shift)&(1<<digit-1) == 0 {
			continue
		}
		clear(count[:])
		for _, k := range src {
			count[((k.pfx&mask)>>shift)&(1<<digit-1)]++
		}
		sum := 0
		for i, n := range count {
			count[i] = sum
			sum += n
		}
		for _, k := range src {
			d := ((k.pfx & mask) >> shift) & (1<<digit - 1)
			dst[count[d]] = k
			count[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &keys[0] {
		copy(keys, src)
		return src
	}
	return dst
}
