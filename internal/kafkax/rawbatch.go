package kafkax

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errShortRecord = errors.New("record extends past its batch")

// eachRawRecord decodes the record batches of one fetched partition (Kafka
// message format v2) and calls fn with every record at or above from, in
// offset order, control records included, reusing r: r and its slices are
// only valid during the call. It returns the offset after the last complete
// batch (from if there is none). This is what kgo.ProcessFetchPartition
// does without allocating a kgo.Record per record, for readers that copy
// what they keep (bulk restores of millions of records).
func eachRawRecord(raw []byte, from int64, dec kgo.Decompressor, r *kgo.Record, fn func(*kgo.Record) error) (int64, error) {
	next := from
	for len(raw) >= 17 {
		base := int64(binary.BigEndian.Uint64(raw))
		n := int(int32(binary.BigEndian.Uint32(raw[8:])))
		if n < 49 || 12+n > len(raw) {
			break // a batch cut short by the response size: fetched again next time
		}
		b := raw[:12+n]
		raw = raw[12+n:]
		if magic := b[16]; magic != 2 {
			return next, fmt.Errorf("record batch at offset %d has message format v%d, want v2 (Kafka 0.11 or later)", base, magic)
		}
		if crc := binary.BigEndian.Uint32(b[17:]); crc != crc32.Checksum(b[21:], castagnoli) {
			return next, fmt.Errorf("record batch at offset %d fails its CRC check", base)
		}
		attrs := binary.BigEndian.Uint16(b[21:])
		last := base + int64(int32(binary.BigEndian.Uint32(b[23:])))
		firstTS := int64(binary.BigEndian.Uint64(b[27:]))
		maxTS := int64(binary.BigEndian.Uint64(b[35:]))
		r.ProducerID = int64(binary.BigEndian.Uint64(b[43:]))
		r.ProducerEpoch = int16(binary.BigEndian.Uint16(b[51:]))
		count := int(int32(binary.BigEndian.Uint32(b[57:])))
		tsType := int8(0)
		if attrs&0x08 != 0 {
			tsType = 1
		}
		r.Attrs = kgo.NewRecordAttrs(kgo.RecordAttrsOpts{Codec: kgo.CompressionCodecType(attrs & 0x07),
			TimestampType: tsType, Transactional: attrs&0x10 != 0, Control: attrs&0x20 != 0})
		if last < from {
			continue
		}
		recs := b[61:]
		if codec := attrs & 0x07; codec != 0 {
			var err error
			if recs, err = dec.Decompress(recs, kgo.CompressionCodecType(codec)); err != nil {
				return next, fmt.Errorf("decompressing record batch at offset %d: %w", base, err)
			}
		}
		for range count {
			var err error
			if recs, err = decodeRecord(recs, base, firstTS, maxTS, tsType == 1, r); err != nil {
				return next, fmt.Errorf("record batch at offset %d: %w", base, err)
			}
			if r.Offset < from {
				continue
			}
			if err := fn(r); err != nil {
				return next, err
			}
		}
		next = last + 1
	}
	return next, nil
}

// decodeRecord decodes the record at the start of b into r (key, value,
// offset, timestamp; headers are skipped) and returns the rest of b.
func decodeRecord(b []byte, base, firstTS, maxTS int64, logAppend bool, r *kgo.Record) ([]byte, error) {
	n, w := binary.Varint(b)
	if w <= 0 || n < 0 || int64(len(b)-w) < n {
		return nil, errShortRecord
	}
	rec := b[w : w+int(n)]
	rest := b[w+int(n):]
	if len(rec) < 1 {
		return nil, errShortRecord
	}
	rec = rec[1:] // record attributes: unused
	var tsDelta, offDelta int64
	var ok bool
	if tsDelta, rec, ok = varint(rec); !ok {
		return nil, errShortRecord
	}
	if offDelta, rec, ok = varint(rec); !ok {
		return nil, errShortRecord
	}
	if r.Key, rec, ok = varBytes(rec); !ok {
		return nil, errShortRecord
	}
	if r.Value, _, ok = varBytes(rec); !ok {
		return nil, errShortRecord
	}
	r.Offset = base + offDelta
	ts := firstTS + tsDelta
	if logAppend {
		ts = maxTS
	}
	r.Timestamp = time.UnixMilli(ts)
	return rest, nil
}

func varint(b []byte) (int64, []byte, bool) {
	v, w := binary.Varint(b)
	if w <= 0 {
		return 0, nil, false
	}
	return v, b[w:], true
}

// varBytes reads a varint length and that many bytes (length -1: nil).
func varBytes(b []byte) ([]byte, []byte, bool) {
	n, b, ok := varint(b)
	if !ok || n < -1 || n > int64(len(b)) {
		return nil, nil, false
	}
	if n < 0 {
		return nil, b, true
	}
	return b[:n:n], b[n:], true
}
