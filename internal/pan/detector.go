// Package pan finds and masks payment card numbers (PANs) in arbitrary bytes.
//
// It is the one PAN detector of pcistream: the masker, the scope scanner, the
// log handler and the tests all use it. The scanner is a single forward pass
// over the input. Every PAN starts with at least four consecutive digits, so
// it first computes, 64 bytes at a time, a bit mask of the positions that end
// a run of four digits (AVX2 on amd64, SWAR on 8-byte words elsewhere) and
// skips every block without one; shorter digit runs (ports, status codes,
// IP octets, most of a hex id) are never looked at. A candidate run is then
// judged by a hand-written state machine, and the IIN and Luhn checks run only
// on 12 to 19 digits with a plausible shape, so clean text costs little and
// never allocates.
//
// What counts as a PAN: 12 to 19 digits, either contiguous or grouped with
// one consistent single separator (space, dash, dot, plus, or the URL escapes
// %20 and %2D), Luhn-valid, inside a known IIN range with a length valid for
// that network (see IINRanges). A grouped PAN starts with a group of 4 to 6
// digits (the usual 4-4-4-4, 4-6-5, 4-4-4-4-3 printings). The run must stand
// alone: a letter, digit or '*' right before or after it means it is part of a
// longer word or number and is not reported; so are digit runs longer than a
// PAN, decimals, '+'-prefixed phone numbers, IBANs (the letters before the
// check digits reject the whole run), UUIDs, version strings and timestamps.
// Space-separated runs are searched group by group, so a PAN inside a list of
// numbers ("qty 2 4111 1111 1111 1111") is still found; dash and dot runs are
// taken whole (or by their first group), so an all-digit UUID or a dotted
// version never yields a PAN from its tail.
package pan

import (
	"encoding/binary"
	"math"
	"math/bits"
	"unsafe"
)

// Match is one PAN found in a byte slice. It never holds the full PAN.
type Match struct {
	Start, End int     // byte offsets into the scanned input: first digit .. one past last digit (separators inside included)
	Digits     int     // number of digits (12..19)
	Network    Network // card network from the IIN
	Last4      [4]byte // last four digits (ASCII)
}

// Detector finds PANs. It is immutable after New and safe for concurrent use.
type Detector struct {
	nets uint32 // bit set of reported networks
}

type cfg struct {
	nets uint32
}

// Opt configures a Detector.
type Opt func(*cfg)

// OnlyNetworks restricts detection to the given networks (default: all known
// networks). Useful for scanners that want, say, only the brands a merchant
// accepts; masking should keep the default.
func OnlyNetworks(ns ...Network) Opt {
	return func(c *cfg) {
		c.nets = 0
		for _, n := range ns {
			if n > Unknown && n < numNetworks {
				c.nets |= 1 << n
			}
		}
	}
}

// New returns a Detector. With no options it reports every known network.
func New(opts ...Opt) *Detector {
	c := cfg{nets: (1<<numNetworks - 1) &^ 1}
	for _, o := range opts {
		o(&c)
	}
	return &Detector{nets: c.nets}
}

// Find appends every PAN in b to dst and returns the extended slice. It does
// not allocate when b holds no PAN (or dst has room).
func (d *Detector) Find(dst []Match, b []byte) []Match {
	s := newScanner(d, b)
	var m Match
	for s.next(&m) {
		dst = append(dst, m)
	}
	return dst
}

// Contains reports whether b holds at least one PAN.
func (d *Detector) Contains(b []byte) bool {
	s := newScanner(d, b)
	var m Match
	return s.next(&m)
}

// ContainsString is Contains for a string, without copying it.
func (d *Detector) ContainsString(str string) bool {
	return d.Contains(stringBytes(str))
}

// FindString is Find for a string, without copying it.
func (d *Detector) FindString(dst []Match, str string) []Match {
	return d.Find(dst, stringBytes(str))
}

// stringBytes views s as bytes without copying; the scanner only reads.
func stringBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// Byte classes.
const (
	cDigit  = 1 << iota // '0'-'9'
	cWord               // letters, digits and '*': a PAN may not touch one
	cHex                // '0'-'9', 'a'-'f', 'A'-'F'
	cSep                // may separate digit groups: ' ', '-', '.', '+', '%' (of %20, %2D)
	cSepEnd             // may end a separator: ' ', '-', '.', '+', '0' and 'D'/'d' (of %20, %2D)
)

var class = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = cDigit | cWord | cHex
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = cWord
		t[c-'a'+'A'] = cWord
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] |= cHex
		t[c-'a'+'A'] |= cHex
	}
	// A masked PAN's '*' counts as part of a word so that what is left of a
	// masked PAN (its BIN or last four) never combines with neighbours into a
	// new candidate: masking is idempotent.
	t['*'] = cWord
	for _, c := range " -.+%" {
		t[c] = cSep
	}
	for _, c := range " -.+0Dd" {
		t[c] |= cSepEnd
	}
	return t
}()

func isDigit(c byte) bool { return c-'0' < 10 }

// Separator kinds. A grouped PAN uses one kind throughout.
type sepKind uint8

const (
	sepNone sepKind = iota
	sepSpace
	sepDash
	sepDot
	sepPlus     // '+': a space in form-encoded URLs
	sepPctSpace // "%20"
	sepPctDash  // "%2D" / "%2d"
)

// spaceLike kinds are searched group by group (lists of numbers are common);
// the others (dash, dot) are taken as a whole.
func (k sepKind) spaceLike() bool { return k == sepSpace || k == sepPlus || k == sepPctSpace }

// sepAt returns the separator at b[p] and its width, if a digit follows it.
func sepAt(b []byte, p int) (sepKind, int) {
	if p >= len(b) || class[b[p]]&cSep == 0 {
		return sepNone, 0
	}
	var k sepKind
	w := 1
	switch b[p] {
	case ' ':
		k = sepSpace
	case '-':
		k = sepDash
	case '.':
		k = sepDot
	case '+':
		k = sepPlus
	case '%':
		if p+2 >= len(b) || b[p+1] != '2' {
			return sepNone, 0
		}
		switch b[p+2] {
		case '0':
			k = sepPctSpace
		case 'D', 'd':
			k = sepPctDash
		default:
			return sepNone, 0
		}
		w = 3
	}
	if p+w < len(b) && isDigit(b[p+w]) {
		return k, w
	}
	return sepNone, 0
}

// leftOK reports whether a digit run starting at start stands alone on its
// left.
func leftOK(b []byte, start int) bool {
	if start == 0 {
		return true
	}
	c := b[start-1]
	if class[c]&cWord == 0 {
		switch c {
		case '+': // "+44 ...", "+4917...": a phone number, unless it separates digits
			if start < 2 || !isDigit(b[start-2]) {
				return false
			}
		case '.': // "0.4111...": a decimal fraction
			if start >= 2 && isDigit(b[start-2]) {
				return false
			}
		}
		return !(class[c]&cSep != 0 && start >= 2 && b[start-2] == '*' && maskedBefore(b, start-2))
	}
	// A word byte before the run is fine only when it ends an escape:
	// "%3D4111..." in URLs, "\n4111..." in JSON strings.
	if start >= 3 && b[start-3] == '%' && class[b[start-2]]&cHex != 0 && class[c]&cHex != 0 {
		return !(start >= 4 && b[start-4] == '*' && maskedBefore(b, start-4))
	}
	if start >= 2 && b[start-2] == '\\' {
		switch c {
		case 'n', 't', 'r', 'b', 'f':
			return true
		}
	}
	return false
}

// maskedBefore reports whether the '*' at b[p] belongs to a masked PAN:
// walking back over '*' and separators reaches a digit or passes at least
// five '*' (every policy masks five or more). A group right after a masked
// PAN ("4222 ***** 2222 ...": its kept last four) is then not a fresh start,
// so masking never exposes a new candidate (idempotence), while markup such
// as "**Card:** 4111..." still is.
func maskedBefore(b []byte, p int) bool {
	stars := 0
	for ; p >= 0; p-- {
		switch c := b[p]; {
		case c == '*':
			if stars++; stars >= minMasked {
				return true
			}
		case c == ' ' || c == '-' || c == '.' || c == '+':
		case isDigit(c):
			return true
		case class[c]&cHex != 0 && p >= 2 && b[p-2] == '%':
			p -= 2 // an escaped separator
		default:
			return false
		}
	}
	return false
}

// rightOK reports whether a digit run ending at end stands alone on its right.
func rightOK(b []byte, end int) bool {
	if end >= len(b) {
		return true
	}
	c := b[end]
	if class[c]&cWord != 0 {
		return false
	}
	// "4111...1111.50": a decimal.
	return c != '.' || end+1 >= len(b) || !isDigit(b[end+1])
}

// uuidTail reports whether the 12 digits at start are the last group of a
// UUID (8-4-4-4-12 hex).
func uuidTail(b []byte, start int) bool {
	if start < 24 {
		return false
	}
	u := b[start-24 : start]
	for i, c := range u {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if class[c]&cHex == 0 {
				return false
			}
		}
	}
	return true
}

// Group length limits for grouped PANs: the first group is the 4-6 digit
// printing of the IIN; inner groups have 2-8 digits; the last 1-8.
const (
	firstGroupMin = 4
	firstGroupMax = 6
	innerGroupMin = 2
	groupMax      = 8
)

// SWAR constants: digitMask sets the high bit of every byte of x that is an
// ASCII digit. Bytes are masked to 7 bits first so the additions never carry
// across bytes; bytes >= 0x80 are cleared at the end.
const (
	lo7 = 0x7f7f7f7f7f7f7f7f
	hi1 = 0x8080808080808080
	add = 0x5050505050505050 // +0x50: high bit iff byte >= 0x30
	adc = 0x4646464646464646 // +0x46: high bit iff byte >= 0x3a
)

func digitMask(x uint64) uint64 {
	y := x & lo7
	return (y + add) &^ (y + adc) &^ x & hi1
}

// gather is the multiplier that moves the low bit of each byte of x (bytes
// 0 or 1) into bit k of the top byte: (x*gather)>>56 has bit k = byte k.
const gather = 0x0102040810204080

// digitBits returns a bit mask of the digits among the 8 bytes of b at i:
// bit k set iff b[i+k] is an ASCII digit.
func digitBits(b []byte, i int) uint64 {
	return (digitMask(binary.LittleEndian.Uint64(b[i:])) >> 7) * gather >> 56
}

// blockSize is how many candidate end positions one block covers.
const blockSize = 64

// digitBits64 returns the digit bit mask of b[bs:bs+64] (bit k: b[bs+k]).
func digitBits64(b []byte, bs int) uint64 {
	_ = b[bs+63]
	return digitBits(b, bs) | digitBits(b, bs+8)<<8 | digitBits(b, bs+16)<<16 | digitBits(b, bs+24)<<24 |
		digitBits(b, bs+32)<<32 | digitBits(b, bs+40)<<40 | digitBits(b, bs+48)<<48 | digitBits(b, bs+56)<<56
}

// endMasksGeneric is the portable endMasks: for the whole 64-byte blocks in
// b[bs:bs+n] it returns the offset of the first block holding the last
// byte of a run of four digits and that block's end mask (bit k set iff
// b[bs+off+k-3 .. bs+off+k] are digits), or n and 0. prev is the digit mask
// of the 64 bytes before bs; only its top three bits are used.
func endMasksGeneric(b []byte, bs, n int, prev uint64) (int, uint64) {
	for off := 0; off < n; off += blockSize {
		m := digitBits64(b, bs+off)
		if m != 0 {
			if e := m & (m<<1 | prev>>63) & (m<<2 | prev>>62) & (m<<3 | prev>>61); e != 0 {
				return off, e
			}
		}
		prev = m
	}
	return n, 0
}

func digitBit(c byte) uint64 {
	if isDigit(c) {
		return 1
	}
	return 0
}

// scanner walks b once; next returns the matches in order.
type scanner struct {
	d *Detector
	b []byte
	i int // where the next search starts; everything before is consumed

	// The last block of candidate ends computed by cand, so dense text
	// (hex ids, numbers) does not recompute it for every candidate.
	bs    int // start of the block, or noBlock
	bmask uint64
}

// noBlock marks an empty block cache; far below any i so the fast path
// in cand never takes it.
const noBlock = math.MinInt / 2

func newScanner(d *Detector, b []byte) scanner {
	return scanner{d: d, b: b, bs: noBlock}
}

// candSlow returns the start of the first run of at least four digits that lies
// entirely at or after i (bytes before i count as non-digits), or -1. Every
// PAN begins with such a run (a first group of 4-6 digits, or 12-19
// contiguous digits), so shorter digit runs are never looked at.
//
// It also returns j: b[start:j] are digits, and when the run ends inside the
// block, j is its end (read off the mask, no byte loop). next has the fast
// path (the candidate is in the cached block) inlined.
func (s *scanner) candSlow(i int) (start, j int) {
	b := s.b
	for {
		e := i + 3 // the first admissible end
		if s.bs == noBlock || e >= s.bs+blockSize {
			// Blocks are aligned to the slice start so each is computed
			// at most once per pass.
			bs := e &^ (blockSize - 1)
			if bs+blockSize > len(b) {
				break // only a tail is left
			}
			var prev uint64
			if bs >= 3 {
				prev = digitBit(b[bs-1])<<63 | digitBit(b[bs-2])<<62 | digitBit(b[bs-3])<<61
			}
			off, mask := endMasks(b, bs, prev)
			if mask == 0 {
				// No whole block left with a candidate; the tail may
				// still hold one (possibly starting in the last block).
				i = max(i, bs+off-3)
				break
			}
			s.bs, s.bmask = bs+off, mask
		}
		sh := uint(max(0, e-s.bs))
		if m := s.bmask >> sh << sh; m != 0 {
			p := uint(bits.TrailingZeros64(m))
			// Consecutive ends from p: the run goes on while they do.
			l := uint(bits.TrailingZeros64(^(s.bmask >> p)))
			return s.bs + int(p) - 3, s.bs + int(p+l)
		}
		i = s.bs + blockSize - 3
	}
	// Tail shorter than a block.
	run := 0
	for p := i; p < len(b); p++ {
		if !isDigit(b[p]) {
			run = 0
			continue
		}
		if run++; run == 4 {
			return p - 3, p + 1
		}
	}
	return -1, -1
}

// next finds the next PAN at or after s.i, fills m and advances.
func (s *scanner) next(m *Match) bool {
	b := s.b
	n := len(b)
	i := s.i
	for {
		// cand's fast path, inlined by hand (the compiler will not).
		var start, j int
		if sh := i + 3 - s.bs; sh >= 0 && sh < blockSize && s.bmask>>uint(sh) != 0 {
			p := uint(bits.TrailingZeros64(s.bmask >> uint(sh) << uint(sh)))
			start, j = s.bs+int(p)-3, s.bs+int(p+uint(bits.TrailingZeros64(^(s.bmask>>p))))
		} else {
			start, j = s.candSlow(i)
		}
		if start < 0 {
			s.i = n
			return false
		}
		// The hex digits of a %XX escape are not data.
		if start > 0 && b[start-1] == '%' && class[b[start+1]]&cHex != 0 {
			i = start + 2
			continue
		}
		for j < n && isDigit(b[j]) {
			j++
		}
		k := j - start
		if j < n && class[b[j]]&cSep == 0 && k < MinDigits {
			// The bulk of candidates in logs: years, counters, ids and hex
			// fragments, too short and not followed by another group.
			i = j
			continue
		}
		// Shorter groups may precede this one in the same run ("+44 20
		// 7946 ...", "10.0.1234"): judge the run from its real start.
		if class[b[max(start-1, 0)]]&cSepEnd == 0 {
			// Nothing before the run can be a separator: no walk back.
		} else if kind, first := walkBack(b, i, start); kind != sepNone {
			if !kind.spaceLike() || (!leftOK(b, first) && k < MinDigits) {
				// A dash or dot run that starts with a short group is
				// not a PAN ("2026-11-23", "1.2.3456.7"), nor is a run
				// of short groups glued to a word ("DE89 3704 ...").
				// A group long enough to be a PAN on its own after such
				// a word ("id42 4111...", or an Avro string whose length
				// byte is a space) is judged on its own: its left
				// neighbour is the separator.
				i = skipRun(b, j, kind)
				continue
			}
		}
		kind, w := sepAt(b, j)
		if w == 0 {
			// Contiguous run: the common case.
			if k >= MinDigits && k <= MaxDigits && leftOK(b, start) && rightOK(b, j) &&
				!(k == 12 && start > 0 && b[start-1] == '-' && uuidTail(b, start)) &&
				s.check(start, j, k, m) {
				s.i = j
				return true
			}
			i = j
			continue
		}
		if !leftOK(b, start) {
			// "v1234.5678", "a716-4466...": the whole run is part of a
			// word; none of it is a PAN.
			i = skipRun(b, j, kind)
			continue
		}
		if kind.spaceLike() {
			if end, ok := s.window(start, j, kind, m); ok {
				s.i = end
				return true
			}
			// Nothing starts at this group; the next group is a fresh start
			// (its left neighbour is the separator).
			i = j + w
			continue
		}
		end, ok := s.grouped(start, j, kind, m)
		if ok {
			s.i = end
			return true
		}
		// A dash or dot run that is not a PAN as a whole may still begin
		// with a contiguous PAN ("4111111111111111-12/27").
		if k >= MinDigits && k <= MaxDigits && rightOK(b, j) && s.check(start, j, k, m) {
			s.i = j
			return true
		}
		i = end
	}
}

// sepBefore returns the separator that ends right before q, if a digit at or
// after lim precedes it.
func sepBefore(b []byte, lim, q int) (sepKind, int) {
	if q-2 < lim {
		return sepNone, 0
	}
	var k sepKind
	w := 1
	switch b[q-1] {
	case ' ':
		k = sepSpace
	case '-':
		k = sepDash
	case '.':
		k = sepDot
	case '+':
		k = sepPlus
	case '0', 'D', 'd':
		if q-4 < lim || b[q-3] != '%' || b[q-2] != '2' {
			return sepNone, 0
		}
		if b[q-1] == '0' {
			k = sepPctSpace
		} else {
			k = sepPctDash
		}
		w = 3
	default:
		return sepNone, 0
	}
	if isDigit(b[q-w-1]) {
		return k, w
	}
	return sepNone, 0
}

// walkBack looks left of the digit group starting at start for earlier
// groups of the same run that the candidate search skipped (they are
// shorter than four digits) and are not yet consumed (at or after lim). It
// returns the run's separator kind and first group, or sepNone.
func walkBack(b []byte, lim, start int) (sepKind, int) {
	kind := sepNone
	first := start
	q := start
	for {
		kd, w := sepBefore(b, lim, q)
		if kd == sepNone || (kind != sepNone && kd != kind) {
			return kind, first
		}
		kind = kd
		q -= w
		for q > lim && isDigit(b[q-1]) {
			q--
		}
		first = q
	}
}

// skipRun returns the end of the run of kind whose first group ends at j.
func skipRun(b []byte, j int, kind sepKind) int {
	for {
		k, w := sepAt(b, j)
		if w == 0 || k != kind {
			return j
		}
		j += w
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	}
}

// grouped checks a dash- or dot-separated run whose first group is
// [start, j) as a whole. It returns the run's end either way.
func (s *scanner) grouped(start, j int, kind sepKind, m *Match) (int, bool) {
	b := s.b
	k := j - start
	shape := k >= firstGroupMin && k <= firstGroupMax
	total := k
	p := j
	lastLen := 0
	for {
		kd, w := sepAt(b, p)
		if w == 0 || kd != kind {
			break
		}
		if lastLen != 0 && lastLen < innerGroupMin {
			shape = false
		}
		q := p + w
		e := q + 1
		for e < len(b) && isDigit(b[e]) {
			e++
		}
		lastLen = e - q
		if lastLen > groupMax {
			shape = false
		}
		total += lastLen
		p = e
	}
	if shape && total >= MinDigits && total <= MaxDigits && rightOK(b, p) && s.check(start, p, total, m) {
		return p, true
	}
	return p, false
}

// window looks for the longest PAN that starts with the group [start, j) of a
// space-like run and spans whole groups. It returns the PAN's end.
func (s *scanner) window(start, j int, kind sepKind, m *Match) (int, bool) {
	b := s.b
	k := j - start
	single := k >= MinDigits && k <= MaxDigits
	multi := k >= firstGroupMin && k <= firstGroupMax
	if !single && !multi {
		return 0, false
	}
	var ends [MaxDigits]int  // end of each group
	var sums [MaxDigits]int  // digits up to and including each group
	var lens [MaxDigits]int8 // digits in each group
	ends[0], sums[0], lens[0] = j, k, int8(k)
	cnt := 1
	if multi {
		p := j
		for cnt < MaxDigits {
			kd, w := sepAt(b, p)
			if w == 0 || kd != kind {
				break
			}
			q := p + w
			e := q + 1
			for e < len(b) && isDigit(b[e]) {
				e++
			}
			gl := e - q
			if gl > groupMax || sums[cnt-1]+gl > MaxDigits {
				break
			}
			ends[cnt], sums[cnt], lens[cnt] = e, sums[cnt-1]+gl, int8(gl)
			cnt++
			p = e
		}
	}
	for e := cnt - 1; e >= 0; e-- {
		if sums[e] < MinDigits {
			break
		}
		if e > 0 && !(multi && innerOK(lens[1:e])) {
			continue
		}
		if e == 0 && !single {
			continue
		}
		if !rightOK(b, ends[e]) {
			continue
		}
		if s.check(start, ends[e], sums[e], m) {
			return ends[e], true
		}
	}
	return 0, false
}

// innerOK reports whether the inner groups of a window (all groups but the
// first and last) are long enough.
func innerOK(inner []int8) bool {
	for _, l := range inner {
		if l < innerGroupMin {
			return false
		}
	}
	return true
}

// check validates the digits of b[start:end] (nd digits, separators allowed)
// and fills m on success.
func (s *scanner) check(start, end, nd int, m *Match) bool {
	var buf [MaxDigits]byte
	digits := buf[:0]
	if end-start == nd {
		digits = s.b[start:end]
	} else {
		span := s.b[start:end]
		for i := 0; i < len(span); i++ {
			switch c := span[i]; {
			case isDigit(c):
				digits = append(digits, c)
			case c == '%':
				i += 2 // the digits of %20 / %2D are not PAN digits
			}
		}
	}
	net, ok := identify(digits)
	if !ok || s.d.nets&(1<<net) == 0 {
		return false
	}
	m.Start, m.End, m.Digits, m.Network = start, end, nd, net
	copy(m.Last4[:], digits[nd-4:])
	return true
}
