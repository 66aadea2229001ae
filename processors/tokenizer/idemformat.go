package tokenizer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pcistream/pcistream/internal/token"
)

// Idempotency entry format: the value of a record on the idempotency-state
// topic (the key is the idempotency key). The state layer stores values as
// opaque bytes; a fresh worker restores every entry of its partitions, so
// the value is kept small: bytes per record are what a restore decodes,
// copies, sorts, spills and compresses into its tables.
//
// The first byte says which encoding follows:
//
//	0x01  packed: the context id is "ctx_" and 26 letters of token.Alphabet
//	      (contextID always makes those):
//	        17 bytes  the 26 letters' alphabet indexes, 5 bits each, most
//	                  significant bits first (130 bits, 6 zero bits last)
//	        varint    ts      (zigzag, as encoding/binary.AppendVarint)
//	        varint    offset
//	        varint    part
//	0x02  raw: any other context id:
//	        uvarint   length of the context id, then its bytes
//	        varint    ts, varint offset, varint part (as above)
//	'{'   legacy JSON, written before the binary format (read, never
//	      written): {"ctx":"...","ts":N,"off":N,"part":N} ("part" absent in
//	      the oldest entries, read as 0).
//
// Any other first byte, or bytes left after the last field, is a corrupt
// entry (an error, never a guess). New encodings take a new first byte, so
// every worker version reads what older ones wrote. A packed entry is 27-30
// bytes for current timestamps and offsets below 2^20 (the JSON was 90-100).
const (
	idemPacked = 0x01
	idemRaw    = 0x02
	idemJSON   = '{'
)

// ctxLetters is the number of letters in a context id after "ctx_";
// ctxPackedLen the bytes they pack into.
const (
	ctxLetters   = 26
	ctxPackedLen = (ctxLetters*5 + 7) / 8
)

// alphabetIndex maps a byte to its index in token.Alphabet, or -1.
var alphabetIndex = func() (ix [256]int8) {
	for i := range ix {
		ix[i] = -1
	}
	for i := 0; i < len(token.Alphabet); i++ {
		ix[token.Alphabet[i]] = int8(i)
	}
	return ix
}()

// AppendIdempotencyEntry appends the idempotency-state value the tokenizer
// writes for a key first seen in the input record at partition part, offset
// offset, timestamp ts (Unix ms), whose event got context id contextID:
// for benchmarks and tools that must write exactly what the tokenizer does.
func AppendIdempotencyEntry(b []byte, contextID string, ts, offset int64, part int32) []byte {
	return idemEntry{Context: contextID, TS: ts, Offset: offset, Part: part}.append(b)
}

// appendJSON appends e in the legacy JSON format (StateJSONEntries), as
// encoding/json writes it, which every release reads.
func (e idemEntry) appendJSON(b []byte) []byte {
	j, err := json.Marshal(e)
	if err != nil {
		panic(err) // strings and integers always marshal
	}
	return append(b, j...)
}

// append appends e in the current format (packed when the context id
// allows, raw otherwise).
func (e idemEntry) append(b []byte) []byte {
	if packable(e.Context) {
		b = append(b, idemPacked)
		var acc uint64
		bits := 0
		for i := len(contextPrefix); i < len(e.Context); i++ {
			acc = acc<<5 | uint64(alphabetIndex[e.Context[i]])
			bits += 5
			for bits >= 8 {
				bits -= 8
				b = append(b, byte(acc>>bits))
			}
		}
		b = append(b, byte(acc<<(8-bits))) // 130 bits: 2 left, padded with zeros
	} else {
		b = append(b, idemRaw)
		b = binary.AppendUvarint(b, uint64(len(e.Context)))
		b = append(b, e.Context...)
	}
	b = binary.AppendVarint(b, e.TS)
	b = binary.AppendVarint(b, e.Offset)
	return binary.AppendVarint(b, int64(e.Part))
}

// packable reports whether c is "ctx_" and 26 letters of token.Alphabet.
func packable(c string) bool {
	if len(c) != len(contextPrefix)+ctxLetters || !strings.HasPrefix(c, contextPrefix) {
		return false
	}
	for i := len(contextPrefix); i < len(c); i++ {
		if alphabetIndex[c[i]] < 0 {
			return false
		}
	}
	return true
}

// errIdemCorrupt is the error for a value in none of the formats.
var errIdemCorrupt = errors.New("corrupt (not a known idempotency entry format): the state topic holds a value this worker did not write; restore it from a clean changelog")

// parseIdem decodes an idempotency entry in any of its formats.
func parseIdem(v []byte) (idemEntry, error) {
	if len(v) == 0 {
		return idemEntry{}, errIdemCorrupt
	}
	var e idemEntry
	switch v[0] {
	case idemJSON:
		if err := json.Unmarshal(v, &e); err != nil {
			return idemEntry{}, fmt.Errorf("legacy JSON entry: %w", err)
		}
		return e, nil
	case idemPacked:
		if len(v) < 1+ctxPackedLen || v[ctxPackedLen]&(1<<(ctxPackedLen*8-ctxLetters*5)-1) != 0 {
			return idemEntry{}, errIdemCorrupt // short, or padding bits set
		}
		e.Context = unpackContext(v[1 : 1+ctxPackedLen])
		v = v[1+ctxPackedLen:]
	case idemRaw:
		n, k := binary.Uvarint(v[1:])
		if k <= 0 || n > uint64(len(v)-1-k) {
			return idemEntry{}, errIdemCorrupt
		}
		e.Context = string(v[1+k : 1+k+int(n)])
		v = v[1+k+int(n):]
	default:
		return idemEntry{}, errIdemCorrupt
	}
	var part int64
	for _, f := range []*int64{&e.TS, &e.Offset, &part} {
		x, k := binary.Varint(v)
		if k <= 0 {
			return idemEntry{}, errIdemCorrupt
		}
		*f, v = x, v[k:]
	}
	if len(v) != 0 || part != int64(int32(part)) {
		return idemEntry{}, errIdemCorrupt
	}
	e.Part = int32(part)
	return e, nil
}

// unpackContext is the inverse of the packing in append.
func unpackContext(p []byte) string {
	var b [len(contextPrefix) + ctxLetters]byte
	copy(b[:], contextPrefix)
	var acc uint64
	bits, n := 0, len(contextPrefix)
	for _, c := range p {
		acc = acc<<8 | uint64(c)
		bits += 8
		for bits >= 5 && n < len(b) {
			bits -= 5
			b[n] = token.Alphabet[(acc>>bits)&31]
			n++
		}
	}
	return string(b[:])
}
