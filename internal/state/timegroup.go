package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
)

// Time index groups. A bulk load (restore, Ingest) indexes its entries in
// time not with one Pebble key each ('t' part ts key, as Apply does) but
// with one per group of consecutive entries in changelog order:
//
//	'g' part minTS(8) next(8) firstKey -> members
//	members: per entry, in changelog order:
//	         uvarint(ts - minTS) uvarint(len(key)) key
//
// minTS is the group's oldest timestamp (sign flipped as in 't' keys), next
// the checkpoint of the chunk it was loaded with and firstKey its first
// member's key: together they make a group's key unique (a chunk holds a
// key's last write once; chunks of one restore end at different offsets;
// Ingest callers that repeat a checkpoint rarely repeat a first key with the
// same minTS, and if they do, the overwritten group's entries are only not
// expired: an index entry never deletes anything newer than itself).
// Writing a Pebble key per entry was a fifth of a restore's CPU: its key
// order (ts, key) needed a sort, and each key paid the table writer's
// per-key work; a group pays it once for up to timeGroupMembers entries and
// needs no sort of its entries (only the groups are sorted).
//
// Expiry stays exact: Expire walks the groups whose oldest member is at or
// before the cutoff, deletes the members that are (if not rewritten since),
// and writes the others back as a group keyed by their own oldest
// timestamp. The members of a group span at most timeGroupSpan of time, so
// only the few groups around the cutoff are ever rewritten.
const (
	kindGroup = 'g'
	// timeGroupMembers, timeGroupBytes (of member keys) and timeGroupSpan
	// (ms between the oldest and newest member) bound a group.
	timeGroupMembers = 128
	timeGroupBytes   = 4 << 10
	timeGroupSpan    = 1000
)

// timeGroup is a group being written: members live[first:end] of a chunk.
type timeGroup struct {
	minTS, maxTS int64
	first, end   int
	keyBytes     int
}

// groupKey appends g's Pebble key to b.
func groupKey(b []byte, part int32, minTS, next int64, firstKey []byte) []byte {
	b = appendPrefix(b, kindGroup, part)
	b = binary.BigEndian.AppendUint64(b, uint64(minTS)^(1<<63))
	b = binary.BigEndian.AppendUint64(b, uint64(next))
	return append(b, firstKey...)
}

// collectGroups fills c.live with c's live records (the last record of each
// key, when not a deletion) in changelog order (pfx: the timestamp) and
// c.groups with their groups, sorted by key.
func (c *chunk) collectGroups() {
	c.live, c.groups = c.live[:0], c.groups[:0]
	dead := c.dead
	var g timeGroup
	for off := uint32(0); off < uint32(len(c.buf)); {
		k, v, ts, next := c.at(off)
		if len(dead) > 0 && dead[0] == off {
			dead = dead[1:]
			off = next
			continue
		}
		if v != nil {
			klen := len(k) - prefixLen
			if g.end > g.first && (g.end-g.first >= timeGroupMembers || g.keyBytes+klen > timeGroupBytes ||
				max(g.maxTS, ts)-min(g.minTS, ts) > timeGroupSpan) {
				c.groups = append(c.groups, g)
				g = timeGroup{first: g.end, end: g.end}
			}
			if g.end == g.first {
				g.minTS, g.maxTS = ts, ts
			}
			g.minTS, g.maxTS = min(g.minTS, ts), max(g.maxTS, ts)
			g.keyBytes += klen
			c.live = append(c.live, sortKey{pfx: uint64(ts), off: off})
			g.end++
		}
		off = next
	}
	if g.end > g.first {
		c.groups = append(c.groups, g)
	}
	slices.SortFunc(c.groups, func(a, b timeGroup) int {
		// Keys differ in minTS, else in their first key (same chunk).
		if a.minTS != b.minTS {
			if a.minTS < b.minTS {
				return -1
			}
			return 1
		}
		return bytes.Compare(c.userKey(c.live[a.first].off), c.userKey(c.live[b.first].off))
	})
}

// writeGroups writes c's time index groups (collectGroups) to w.
func (c *chunk) writeGroups(w *sstable.Writer) error {
	var k, v []byte
	for _, g := range c.groups {
		k = groupKey(k[:0], c.part, g.minTS, c.cp.Next, c.userKey(c.live[g.first].off))
		v = v[:0]
		for _, m := range c.live[g.first:g.end] {
			key := c.userKey(m.off)
			v = binary.AppendUvarint(v, uint64(int64(m.pfx)-g.minTS))
			v = binary.AppendUvarint(v, uint64(len(key)))
			v = append(v, key...)
		}
		if err := w.Set(k, v); err != nil {
			return err
		}
	}
	return nil
}

var errCorruptGroup = errors.New("corrupt time index group")

// eachMember calls fn with every member of the group value v whose key
// has minTS as its oldest timestamp.
func eachMember(v []byte, minTS int64, fn func(ts int64, key []byte) error) error {
	for len(v) > 0 {
		d, n := binary.Uvarint(v)
		if n <= 0 {
			return errCorruptGroup
		}
		v = v[n:]
		l, n := binary.Uvarint(v)
		if n <= 0 || l > uint64(len(v)-n) {
			return errCorruptGroup
		}
		key := v[n : n+int(l)]
		v = v[n+int(l):]
		if err := fn(minTS+int64(d), key); err != nil {
			return err
		}
	}
	return nil
}

// expireGroups is Expire for the time index groups of part: it adds to b
// the deletion of up to about limit entries at or before cutoff (whole
// groups), rewrites the groups it cut into with their remaining members,
// and deletes the groups it consumed. It returns the members consumed.
func (s *Store) expireGroups(b *pebble.Batch, part int32, cutoff int64, limit int) (int, error) {
	lo := prefix(kindGroup, part)
	hi := binary.BigEndian.AppendUint64(prefix(kindGroup, part), uint64(cutoff+1)^(1<<63))
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	n := 0
	var last, v2 []byte
	type member struct {
		ts  int64
		key []byte
	}
	var keep []member
	for ok := it.First(); ok && n < limit; ok = it.Next() {
		k := it.Key()
		if len(k) < prefixLen+16 {
			it.Close()
			return n, fmt.Errorf("state: partition %d: %w (key of %d bytes)", part, errCorruptGroup, len(k))
		}
		minTS := int64(binary.BigEndian.Uint64(k[prefixLen:]) ^ (1 << 63))
		keep = keep[:0]
		err := eachMember(it.Value(), minTS, func(ts int64, key []byte) error {
			if ts > cutoff {
				keep = append(keep, member{ts, key})
				return nil
			}
			n++
			e, found, err := s.Get(part, key)
			if err != nil || !found || e.TS > ts {
				return err
			}
			return b.Delete(dataKey(part, key), nil)
		})
		if err != nil {
			it.Close()
			return n, fmt.Errorf("state: expiring partition %d: %w", part, err)
		}
		if len(keep) > 0 {
			// The members after the cutoff stay, keyed by the oldest of
			// them (after hi: this iteration does not see them again),
			// with the group's suffix, which keeps the key unique.
			restMin := keep[0].ts
			for _, m := range keep {
				restMin = min(restMin, m.ts)
			}
			v2 = v2[:0]
			for _, m := range keep {
				v2 = binary.AppendUvarint(v2, uint64(m.ts-restMin))
				v2 = binary.AppendUvarint(v2, uint64(len(m.key)))
				v2 = append(v2, m.key...)
			}
			nk := binary.BigEndian.AppendUint64(prefix(kindGroup, part), uint64(restMin)^(1<<63))
			if err := b.Set(append(nk, k[prefixLen+8:]...), v2, nil); err != nil {
				it.Close()
				return n, err
			}
		}
		last = append(last[:0], k...)
	}
	if err := it.Close(); err != nil {
		return n, err
	}
	if last != nil {
		// One range tombstone for the consumed groups.
		if err := b.DeleteRange(lo, append(last, 0), nil); err != nil {
			return n, err
		}
	}
	return n, nil
}
