// Package pan finds and masks payment card numbers (PANs) in arbitrary bytes.
//
// It is the one PAN detector of pcistream: the masker, `pcistream mask`, the
// scope scanner, the log handler and the dead-letter copies all use it. It is
// recall-first: it finds a card number however a person or a program wrote
// it, and takes its precision from the card rules and from recognising
// look-alikes, never from requiring clean boundaries.
//
// What counts as a PAN: 12 to 19 decimal digits, Luhn-valid, inside a known
// IIN range with a length valid for that network (see IINRanges), where
//
//   - a digit may be written as an ASCII digit, a digit of any other script
//     (Unicode Nd: fullwidth, Arabic-Indic, Devanagari, ...), a superscript,
//     subscript or circled digit (Unicode No: ⁴, ₄, ④, ❹), a JSON or
//     JavaScript escape (\u0034, double-escaped \\u0034, surrogate pairs,
//     \u{34}), \U00000034 (Python, C), a byte escape (\x34), an octal
//     byte escape of three digits (\064: C, bash $'...', PostgreSQL), a
//     percent escape (%34, double-encoded %2534, the legacy %u0034, or the
//     percent- or \x-escaped UTF-8 of a non-ASCII digit) or an HTML
//     character reference (&#52;, &#x34;, &#0052;, &amp;#52;, and &#52
//     without its ';', as HTML5 parsers read it);
//   - digits are contiguous, or grouped by gaps of up to eight separator
//     units in any mix: space, tab, line break (also VT, FF, NEL, U+2028,
//     U+2029), '-', '.', ':', '/', '_', '+', ',', ';', '|', NUL (UTF-16 text
//     read as bytes), NBSP, the middle dot, bullets, the Unicode spaces,
//     en/em dashes and minus, fullwidth and ideographic commas and dots,
//     the katakana middle dot, Arabic commas and thousands separator, wave
//     dashes and tildes, box-drawing lines, written plainly
//     or escaped (%20, \t, \u00a0, &nbsp;, ...). Zero-width characters,
//     soft hyphens, the other characters that render as nothing (bidi
//     marks, embeddings and isolates as text copied from right-to-left
//     interfaces holds them, invisible operators, the combining grapheme
//     joiner, variation selectors, Hangul fillers, tag characters; plain
//     or escaped: \u200e, &lrm;), terminal escape sequences (ESC [ digits
//     and ';' then a letter: the colors of grep --color and of logs; plain
//     or escaped: \u001b[1m, \033[0m) and MIME quoted-printable soft line
//     breaks (=\r\n) are seen through: they do not even split a group.
//     Quoted-printable units of a non-ASCII separator or digit (=C2=A0,
//     =EF=BC=94) count as that character once a plain digit has started
//     the number (the block filter does not look at '=');
//   - markup between groups: quotes beside a separator, as CSV, JSON, SQL
//     and Python write a number split into fields ("4111","1111",...,
//     '4111' || '1111'), and HTML/XML tags without digits
//     (4111<span>1111</span>, <td>4111</td><td>1111</td>, <br/>; plain or
//     escaped: &lt;b&gt;, \u003cb\u003e). Groups split by markup must
//     have 4-8 digits (the last 1-8), or one digit each, so quoted lists
//     and tables of small numbers never form a PAN;
//   - the groups have a printed shape: one group of 12-19 digits, or a first
//     group of 3-8 digits, inner groups of 3-8 and a last group of 1-8, a
//     first group of 1-3 then groups of exactly three after one consistent
//     separator (thousands grouping: "4,111,111,111,111,111", '.', ' ',
//     U+202F), or one digit per group ("4 1 1 1 ..."). Inside a longer run
//     of groups (a list of numbers, a PAN followed by an expiry or ".00")
//     the longest window of whole groups that is a PAN wins, windows with
//     one consistent separator first;
//   - a float in scientific notation that is an exact integer of 12-19
//     digits (Java Double.toString, Jackson, Go's %v of a float64:
//     "4.111111111111111E15", "...e+15") is that integer (its mantissa
//     padded with zeros); the mantissa's digits are masked by their place
//     in it. A mantissa of fewer than nine digits after the point (a PAN
//     ending in seven zeros) is not looked at;
//   - in payment messages a PAN may be glued to the fields around it: EMV
//     tag 5A ("5A08" + the BCD PAN, 'F'-padded when odd), tag 57 (track 2
//     equivalent: "57" + length + PAN + 'D' + expiry ...) and ISO 8583
//     field 2 (a length 12-19 then the PAN, at the start of a digit run
//     longer than 19), where the group starts a run of groups or follows
//     a PAN found in it; a miss elsewhere, and when the bitmap before
//     field 2 ends in a digit, which joins the run. See tlv; a long digit
//     run that starts with 12-19 and a Luhn-valid number of that length
//     in a card range is masked (a false positive);
//   - anything may stand right before or after the number: letters
//     ("PAN4111...", "...1111x"), quotes, brackets, '=', '*', '#', '+', and
//     an escape whose last characters are digits: magnetic stripe track 1
//     ("%B4111...^NAME^..."), "50%4111...", a Windows path "C:\x\3714...":
//     the digits are read both as data and as the escape's;
//   - the number may be inside the hex of its ASCII text (SQL 0x3431...,
//     MySQL X'3431...', PostgreSQL bytea \x3431..., hex strings in logs)
//     or inside base64 (standard or URL alphabet, padded or not: JWT
//     payloads, HTTP Basic credentials, base64 JSON in logs), also base64
//     of UTF-16LE text (PowerShell -EncodedCommand, .NET). Such a region is
//     decoded and scanned like any text, 384 decoded bytes at a time in
//     windows that overlap by 96, to the end of the token; Mask masks the decoded text and encodes it again, so the region
//     keeps its length and stays valid hex or base64 (two PANs that share
//     a base64 group are one finding, all digits masked).
//
// Look-alikes that are not reported: Luhn-invalid numbers and numbers no
// network issues (this is what rejects Unix times in s, ms, µs and ns: until
// 2033 they all start with 1, which no supported network uses; see
// firstDigitOK), digit runs longer than 19 (but see tlv), decimal
// fractions ("0.4532...", "1.2e-05"), hex literals and hashes (a digit run
// inside a hex token that holds other digits, or after a "0x" that starts
// a token: "...10x4111..." is no hex literal), UUIDs, valid
// IBANs (a country of the SWIFT registry, its registered length, ending
// where its token ends, mod-97 checked; only the IBAN's own groups: a PAN
// after it in the same run is found), '+'-prefixed numbers of at most 15
// digits (E.164 phone numbers; not after a letter or digit, where '+' is a
// form-encoded space), dotted IPv4 addresses (with or without a port),
// versions, dates, already-masked PANs and pcistream tokens (neither has
// 12 digits in a row).
//
// Tradeoffs, chosen recall-first (when in doubt, mask):
//
//   - Unix times: every timestamp from 2001 to 2033 in s, ms, µs or ns
//     starts with 1, and no supported network starts with 1 (UATP is left
//     out for that reason), so timestamps never match, Luhn or not. From
//     2033 seconds start with 2; ns timestamps in 2200-2204 (Mir) and
//     2221-2720 (Mastercard) then fall in card ranges and, when Luhn-valid
//     (1 in 10), are masked: a false positive, never a leak.
//   - '+' then 12-15 plain digits, contiguous or after a 1-3 digit country
//     code, is an E.164 phone number and is kept, even when it is also a
//     valid 15-digit Amex or 13-digit Visa; '+' before a number printed like
//     a card (first group of 4+, or 16+ digits) does not protect it, nor
//     does a '+' right after a letter or digit: that is a space in URL and
//     form encoding ("my+card+is+3782...").
//   - A digit run inside a hex token that holds other digits (hashes, ids)
//     is kept; letters glued to a number alone ("card4111...") are not.
//   - Space-, tab- or line-separated tables of 4-digit numbers can form a
//     Luhn-valid number in a card range: masked (a false positive).
//   - Quoted or tagged groups of 4-8 digits are a split number: a quoted
//     CSV row or an HTML table of 4-digit numbers that forms a Luhn-valid
//     number in a card range is masked (a false positive), as unquoted.
//   - Not covered (a miss, documented): one digit per quoted field or per
//     tag ("4","1",... or <span>4</span>... with plain digits: the filter
//     looks at three digits in a row, or one-digit groups split by plain
//     separators); hex of a number whose separators are not space or tab
//     ("34313131 2d 31..." for dashes: only long digit runs are looked
//     into); hex dumps with a space between bytes ("34 31 31 31"); base64
//     of a number printed one digit per group or written with escapes or
//     other scripts' digits (the base64 signal is three groups in a row
//     that start with an ASCII digit); base64 split across lines (MIME):
//     only a PAN inside one line is found; digit pairs ("41 11 11 11 ...")
//     are no printed shape: dates, times and hex dumps write pairs; digits
//     written as words ("four one one one ..."): too easily confused with
//     prose, left out.
//   - Commas, semicolons and pipes are separators: a CSV or pipe-separated
//     row of 4-digit numbers that forms a Luhn-valid number in a card range
//     is masked (a false positive). A number of 12-19 digits printed with
//     thousands separators ("4,111,111,111,111,111") is a printed shape:
//     an amount that forms a Luhn-valid number in a card range is masked
//     (a false positive), as is a window of 3-digit groups of 12+ digits
//     of a longer one. Not covered (a miss): Indian lakh grouping
//     ("4,11,11,11,...": digit pairs, see above) and the apostrophe as a
//     thousands separator ("4'111'111...": a quote alone between groups
//     is no gap).
//
// Speed: a 64-byte block filter (AVX2 on amd64, SWAR elsewhere) marks the
// positions worth a look: the end of three ASCII digits in a row, the end
// of three one-digit groups, every byte that can start an encoded digit
// or separator ('%', '\\', '&', the UTF-8 lead bytes of digits and
// separators), and the base64 signal (an 'M', 'N' or 'O' every fourth
// byte three times, or every eighth for UTF-16LE: the first characters of
// base64 groups that encode digits; see b64Signal); blocks without one are skipped with one nibble
// lookup per 32 bytes and a few scalar operations on its 'M'-'O' mask.
// Within the vector loop, each stretch of ASCII digits and separators is
// counted (on into the neighbouring blocks) and its candidates dropped
// when it cannot hold 12 digits in a printed shape and no escape,
// non-ASCII byte or markup that could continue it follows (prune), so
// blocks of times, ids, ports and amounts never leave it. A
// run that survives is measured with the block's digit and separator
// masks and dropped unless some window of its groups can have 12 digits
// and a printed shape; only then are groups collected, decoded and
// checked. Mask copies the input in the same pass. Clean text never
// allocates.
package pan

import (
	"encoding/binary"
	"math"
	"math/bits"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// Match is one PAN found in a byte slice. It never holds the full PAN.
type Match struct {
	Start, End int     // byte offsets into the scanned input: first digit .. one past last digit (separators inside included; for hex and base64, the characters that encode them)
	Digits     int     // number of digits (12..19)
	Network    Network // card network from the IIN
	Last4      [4]byte // last four digits (ASCII)
	// Encoding says how the PAN was written when that hid it from a plain
	// digit search: escapes, other scripts, unusual separators, glued
	// letters. Zero ("plain") for ASCII digits grouped the classic way.
	Encoding Encoding

	// adj says whether digits of the same run stand right before or after
	// the PAN: masking then keeps none of its digits, so the kept ones can
	// never combine with their neighbours into a new PAN.
	adj uint8
	// sub0, sub1: for a PAN inside base64, where it starts and ends in the
	// decoded bytes of Start..End.
	sub0, sub1 int32
}

const (
	adjBefore = 1 << iota
	adjAfter
	adjMerged // PANs inside base64 that share a group, reported as one: every digit is masked
)

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
	s := scanner{d: d, b: b, bs: noBlock}
	var m Match
	for s.next(&m) {
		dst = append(dst, m)
	}
	return dst
}

// Contains reports whether b holds at least one PAN.
func (d *Detector) Contains(b []byte) bool {
	s := scanner{d: d, b: b, bs: noBlock}
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

func isDigit(c byte) bool { return c-'0' < 10 }

func isUpper(c byte) bool  { return c-'A' < 26 }
func isLetter(c byte) bool { return (c|0x20)-'a' < 26 }
func isHexLetter(c byte) bool {
	return (c|0x20)-'a' < 6
}
func isHex(c byte) bool { return isDigit(c) || isHexLetter(c) }

// Byte tables.
var (
	// interest marks the bytes that can start a digit in some encoding:
	// the block filter's set.
	interest = func() (t [256]bool) {
		for c := '0'; c <= '9'; c++ {
			t[c] = true
		}
		t['%'], t['\\'], t['&'] = true, true, true
		for c := 0xC0; c < 0x100; c++ {
			t[c] = true
		}
		return t
	}()
	// cont marks the bytes that can follow a digit inside a run: another
	// digit in some encoding, or the start of a separator.
	cont = func() (t [256]bool) {
		for c := range 256 {
			t[c] = interest[c]
		}
		for _, c := range " \t\r\n\v\f-.:/_+,;|\x00" {
			t[c] = true
		}
		return t
	}()
)

// filterLead marks the UTF-8 lead bytes the block filter flags: those
// that can start a decimal digit of another script or a non-ASCII
// separator or invisible character (C2, CD, D8, D9, DB, DF, E0-E3, EA,
// EF, F0, F3). The lead bytes of letters (Latin accents, Cyrillic, Greek,
// CJK) never start a run, so text in those scripts stays in the vector
// loop (Arabic's D8 and D9 and the combining marks' CD excepted). scan_amd64.s holds the same set
// as nibble tables (TestFilterSetAVX2 checks every byte).
var filterLead = func() (t [256]bool) {
	for c := range 256 {
		t[c] = ndLead[c]
	}
	var buf [4]byte
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		if sepRune(r) != gapNone {
			utf8.EncodeRune(buf[:], r)
			t[buf[0]] = true
		}
	}
	return t
}()

// leadBits packs, for the eight bytes of x, whether each is a filterLead
// byte.
func leadBits(x uint64) (m uint64) {
	for k := range 8 {
		if filterLead[byte(x>>(8*k))] {
			m |= 1 << k
		}
	}
	return m
}

// SWAR constants: digitMask sets the high bit of every byte of x that is an
// ASCII digit. Bytes are masked to 7 bits first so the additions never carry
// across bytes; bytes >= 0x80 are cleared at the end.
const (
	lo7  = 0x7f7f7f7f7f7f7f7f
	hi1  = 0x8080808080808080
	ones = 0x0101010101010101
	add  = 0x5050505050505050 // +0x50: high bit iff byte >= 0x30
	adc  = 0x4646464646464646 // +0x46: high bit iff byte >= 0x3a
)

func digitMask(x uint64) uint64 {
	y := x & lo7
	return (y + add) &^ (y + adc) &^ x & hi1
}

// eqMask sets the high bit of every byte of x equal to c (c repeated in
// every byte).
func eqMask(x, c uint64) uint64 {
	y := x ^ c
	return ^((y&lo7 + lo7) | y | lo7)
}

// gather is the multiplier that moves the low bit of each byte of x (bytes
// 0 or 1) into bit k of the top byte: (x*gather)>>56 has bit k = byte k.
const gather = 0x0102040810204080

// bits8 packs the high bits of the 8 bytes of x into bits 0..7.
func bits8(x uint64) uint64 { return (x >> 7) * gather >> 56 }

// blockSize is how many bytes one filter block covers.
const blockSize = 64

// candMasksGeneric is the portable candMasks: for the whole 64-byte blocks
// in b[bs:bs+n] it returns the offset of the first block with a candidate
// (see candidates; pd and ps are the digit and separator masks of the 64
// bytes before bs), its candidates c and its masks d (ASCII digits) and s
// (ASCII separators, asciiSep); bit k is byte k of the block. With no such
// block it returns n and zero masks.
func candMasksGeneric(b []byte, bs, n int, pd, ps uint64) (off int, c, d, s uint64) {
	for off = 0; off < n; off += blockSize {
		p := bs + off
		_ = b[p+63]
		var i, mo uint64
		d = 0
		for k := 0; k < blockSize; k += 8 {
			x := binary.LittleEndian.Uint64(b[p+k:])
			d |= bits8(digitMask(x)) << k
			i |= bits8(eqMask(x, '%'*ones)|eqMask(x, '\\'*ones)|eqMask(x, '&'*ones)) << k
			mo |= bits8(eqMask(x&0xfcfcfcfcfcfcfcfc, 'L'*ones)&^eqMask(x, 'L'*ones)) << k
			if x&(x<<1)&hi1 != 0 {
				i |= leadBits(x) << k
			}
		}
		sig := b64Signal(mo)
		if d|i|sig == 0 {
			pd, ps = 0, 0
			continue
		}
		s = 0
		for k := 0; k < blockSize; k++ {
			if asciiSep[b[p+k]] {
				s |= 1 << k
			}
		}
		if c = prune(b, p, bs+n, candidates(d, s, i, pd, ps), d, s, pd, ps) | sig; c != 0 {
			return off, c, d, s
		}
		pd, ps = d, s
	}
	return n, 0, 0, 0
}

// candidates combines a block's masks with the digit and separator masks
// of the block before it (pd, ps) into the positions worth a look: the end
// of three ASCII digits in a row (every PAN has a group of three or more
// digits unless it is printed one digit per group), the end of three
// one-digit groups with one-, two- or three-byte separators ("4 1 1",
// "4 - 1 - 1"), and every byte that
// can start an encoded digit or separator. Shorter digit runs (counters,
// status codes, two-digit date and time fields, amounts' cents) are never
// looked at.
func candidates(d, s, i, pd, ps uint64) uint64 {
	d1, d2, d3, d4, d6, d8 := d<<1|pd>>63, d<<2|pd>>62, d<<3|pd>>61, d<<4|pd>>60, d<<6|pd>>58, d<<8|pd>>56
	s1, s2, s3, s4, s5 := s<<1|ps>>63, s<<2|ps>>62, s<<3|ps>>61, s<<4|ps>>60, s<<5|ps>>59
	s6, s7 := s<<6|ps>>58, s<<7|ps>>57
	return d&d1&d2 | d&s1&d2&s3&d4 | d&s1&s2&d3&s4&s5&d6 | d&s1&s2&s3&d4&s5&s6&s7&d8 | i
}

// edgeBits returns the digit and separator masks of the eight bytes before
// bs, in bits 56..63 as candidates expects them. The bytes before those are
// unknown: bits 0..55 of ps are set so prune treats a stretch that reaches
// them as running on (candidates never reads them).
func edgeBits(b []byte, bs int) (pd, ps uint64) {
	if bs > 0 {
		ps = 1<<56 - 1
	}
	for k := 1; k <= 8 && bs-k >= 0; k++ {
		c := b[bs-k]
		if isDigit(c) {
			pd |= 1 << (64 - k)
		}
		if asciiSep[c] {
			ps |= 1 << (64 - k)
		}
	}
	return pd, ps
}

// tailMasks computes the masks of the last, partial block b[bs:] byte by
// byte.
func tailMasks(b []byte, bs int) (d, s, i uint64) {
	var mo uint64
	for k, c := range b[bs:] {
		if b64Sig(c) {
			mo |= 1 << k
		}
		switch {
		case isDigit(c):
			d |= 1 << k
		case asciiSep[c]:
			s |= 1 << k
		case c == '%' || c == '\\' || c == '&' || filterLead[c]:
			i |= 1 << k
		}
	}
	return d, s, i | b64Signal(mo)
}

// Run limits: a run longer than this is cut (tables of numbers); the gap
// between two groups holds at most maxGapUnits separators.
const (
	maxGroups   = 48
	maxRunDigit = 96
	maxGapUnits = 8
)

// group is one group of digits of a run and the gap before it.
type group struct {
	gap0, start, end int32    // gap before: b[gap0:start]; digits: b[start:end]
	d0               uint8    // index of the group's first digit in scanner.digits
	nd               uint8    // digits in the group (saturates at 255; at most 20 stored)
	alike            bool     // part of a dotted IPv4 address or an IBAN: in no window
	enc              Encoding // how its digits (and invisible gaps inside) were written
	genc             Encoding // how the gap before it was written
}

// Run flags, computed once per run when a window first passes the card
// checks.
const (
	runChecked = 1 << iota
	runReject  // phone number: no window of the run is a PAN
)

// scanner walks b once; next returns the matches in order.
type scanner struct {
	d *Detector
	b []byte
	i int // where the next search starts; everything before is consumed
	// floor is the end of the last match returned: a decoded region may
	// start before i (a base64 group that began before a candidate that
	// led nowhere) but never before floor, whose bytes Mask has rewritten.
	floor int

	// The last filter block, so dense text does not recompute it for every
	// candidate.
	bs         int    // start of the block, or noBlock
	bmask      uint64 // its candidates
	bdig, bsep uint64 // its digit and separator masks (carried into the next block)

	// The current run: groups, stored digits (ASCII), and the next window
	// start to try.
	ng, nd, from, runEnd int
	flags                uint8
	groups               [maxGroups]group
	digits               [maxRunDigit]byte

	// Mask's output, as long as b (out[k] is b[k] masked): with copying
	// set, b[:copied] has been copied to it, by the block filter as it
	// passes blocks (candSlow) or by flushTo. Copied bytes are never
	// copied again, so a PAN masked in place stays masked. (out is only
	// written through, never assigned, so b does not escape.)
	copying bool
	copied  int
	out     []byte

	// long0, long1: a digit run too long to be a PAN that quickRun saw
	// (hex of ASCII, perhaps). mk: the current run has a markup gap.
	long0, long1 int
	mk           bool

	// alt: where to scan again when the current run, which starts with
	// the digits that end an escape, holds no PAN (see skipAt), or 0.
	alt int

	// A decoded region (hex of ASCII, base64; see nested.go): its matches
	// sub[subK:subN] are returned before the scan goes on at subEnd.
	// inner marks a scanner of a decoded region (no further decoding);
	// b64Skip is where the last base64 region ended.
	sub             [maxSub]Match
	subN, subK      int
	subEnd, b64Skip int
	inner           bool
}

// flushTo copies b[s.copied:end] to s.out.
func (s *scanner) flushTo(end int) {
	if end > s.copied {
		copy(s.out[s.copied:end], s.b[s.copied:end])
		s.copied = end
	}
}

// noBlock marks an empty block cache; far below any i.
const noBlock = math.MinInt / 2

// candSlow returns the first candidate position (see candidates) at or
// after i, or -1, computing filter blocks as needed. next has the
// cached-block fast path inlined.
func (s *scanner) candSlow(i int) int {
	b := s.b
	for {
		if i-s.bs >= 0 && i-s.bs < blockSize {
			sh := uint(i - s.bs)
			if m := s.bmask >> sh; m != 0 {
				return i + bits.TrailingZeros64(m)
			}
			i = s.bs + blockSize
		}
		// Blocks are aligned to the slice start so each is computed at
		// most once per pass.
		bs := i &^ (blockSize - 1)
		if bs >= len(b) {
			return -1
		}
		pd, ps := s.bdig, s.bsep
		if bs != s.bs+blockSize {
			pd, ps = edgeBits(b, bs)
		}
		if bs+blockSize > len(b) {
			// The last, partial block: same candidates, by bytes.
			d, sp, in := tailMasks(b, bs)
			s.bs, s.bmask, s.bdig, s.bsep = bs, candidates(d, sp, in, pd, ps), d, sp
			if s.bmask>>uint(i-bs) == 0 {
				return -1
			}
			continue
		}
		var off int
		var c, d, sp uint64
		switch {
		case !s.copying:
			off, c, d, sp = candMasks(b, bs, pd, ps, nil)
		case bs >= s.copied:
			// Mask: the filter copies the blocks it passes, so the input
			// is read once. Bytes are copied once and never again, so a
			// PAN masked in place stays masked.
			s.flushTo(bs)
			off, c, d, sp = candMasks(b, bs, pd, ps, s.out[bs:])
			s.copied = min(bs+off+blockSize, bs+(len(b)-bs)&^(blockSize-1))
		default:
			// Part of this block is in out already: scan it alone.
			off, c, d, sp = candMasks(b[:bs+blockSize], bs, pd, ps, nil)
		}
		if c == 0 {
			i = max(i, bs+off)
			s.bs = noBlock // the tail computes its carry from the bytes
			continue
		}
		s.bs, s.bmask, s.bdig, s.bsep = bs+off, c, d, sp
		i = max(i, bs+off)
	}
}

// prune drops from the block's candidates c those that certainly start
// no PAN, a whole stretch of plain digits and separators at a time: a
// stretch of ASCII digits and separators (d|sp) cannot hold a PAN in any
// printed shape (quickRun would skip each of its runs) when its digits in
// groups of one or of three or more, plus two for a short last group,
// are fewer than MinDigits ("+44 20 7946 0958", "2026:14:21:48 +0000"),
// unless an escape or non-ASCII byte right after it could continue it. A stretch that starts
// at the block's first byte is counted on into the block before (pd, ps:
// its masks; ps all ones where unknown), one that reaches the block's end
// into the next block (when that is whole and before end, the end of the
// region scanned); a stretch longer than that keeps its candidates, and
// so do escapes and lead bytes. This replaces the walk back and forth over
// the short numbers of digit-heavy text (times, ids, ports, amounts) with
// a few bit operations; scan_amd64.s does the same.
func prune(b []byte, bs, end int, c, d, sp, pd, ps uint64) uint64 {
	m := d | sp
	dc := c & d
	keep := c &^ d
	// Digits of the stretch that ends the block before (99: too long).
	prevCnt := 0
	if mp := pd | ps; mp>>63 != 0 {
		prevCnt = 99
		if mp != ^uint64(0) {
			prevCnt = bits.OnesCount64(pd >> uint(bits.Len64(^mp)))
		}
	}
	// The digits that can count towards quickRun's best: those in groups
	// of three or more (t: ends of three in a row), of one (iso), and the
	// group the block ends in (it may go on); a stretch's best is at most
	// their number plus two (one short last group).
	t := d & (d<<1 | pd>>63) & (d<<2 | pd>>62)
	iso := d &^ (d<<1 | pd>>63) &^ (d >> 1)
	w := t | t>>1 | t>>2 | iso | ^uint64(0)<<uint(bits.Len64(^d))
	for dc != 0 {
		k := bits.TrailingZeros64(dc)
		lo := bits.Len64(^m & (1<<uint(k) - 1))
		e := k + bits.TrailingZeros64(^m>>uint(k))
		span := ^uint64(0) << uint(lo)
		if e < blockSize {
			span &= 1<<uint(e) - 1
		}
		dc &^= span
		cnt := bits.OnesCount64(w&span) + 2
		if lo == 0 {
			cnt += prevCnt
		}
		if e >= blockSize {
			nc, ok := nextStretch(b, bs+blockSize, end)
			cnt += nc
			if !ok {
				cnt = 99
			}
		} else if c := b[bs+e]; introHigh[c] || (markupStart[c] && markupKeep(b, bs, e, end, d)) {
			cnt = 99
		}
		if cnt >= MinDigits {
			keep |= c & span
		}
	}
	return keep
}

// markupKeep reports, for prune, whether the markup byte at bs+e may
// continue a number: a quote or '<' only after a group of 4-8 digits (see
// markupShape; or one that reaches back to the block's start), and for
// every kind a digit or an escape or non-ASCII byte close after it (see
// markupWindow), or the window runs past end, the end of the region
// scanned. A window that crosses into the next block is read there: JSON
// fields ("ord_18895038","amount") end blocks often enough that keeping
// them all cost a quarter more runs. scan_amd64.s does the same.
func markupKeep(b []byte, bs, e, end int, d uint64) bool {
	c := b[bs+e]
	if c != '=' {
		if g := lastGroup(d, e); g >= 0 && (g < 4 || g > 8) {
			return false
		}
	}
	return markupLeads(b, bs+e, end)
}

// markupLeads reports whether a digit or an escape or non-ASCII byte
// comes close after the markup byte at b[q] (see markupWindow), or the
// window runs past end. (Not an ESC: scan_amd64.s tests for it only where
// a stretch ends.)
func markupLeads(b []byte, q, end int) bool {
	lo, hi := markupWindow(b[q])
	if q+hi >= end {
		return true
	}
	for _, x := range b[q+lo : q+hi+1] {
		if isDigit(x) || introHigh[x] && x != 0x1b {
			return true
		}
	}
	return false
}

// markupWindow returns where, after a markup byte c, the next group can
// start: "=\n1", "=\r\n1", "=C2=A01", "=EF=BC=91"; "\",\"1" to "' || '1"; "<br>1" to
// "</span> <span>1" (a longer gap is not seen).
func markupWindow(c byte) (lo, hi int) {
	switch c {
	case '=':
		return 2, 8 // "=\n1" .. "=EF=BC=91" (quoted-printable fullwidth digit)
	case '<':
		return 3, 20
	}
	return 2, 7
}

// markupAfter reports whether the markup byte at b[e], after a group of
// group digits, starts a gap that leads to a digit (see markupKeep and
// markupGap).
func markupAfter(b []byte, e, group int) bool {
	c := b[e]
	if c != '=' && (group < 4 || group > 8) {
		return false
	}
	lo, hi := markupWindow(c)
	for k := e + lo; k <= e+hi && k < len(b); k++ {
		if x := b[k]; isDigit(x) || introHigh[x] {
			return markupGap(b, e)
		}
	}
	return false
}

// lastGroup returns how many digits of d stand right before bit e, or -1
// when they reach back to the block's start.
func lastGroup(d uint64, e int) int {
	nd := ^d & (1<<uint(e) - 1)
	if nd == 0 {
		return -1
	}
	return e - bits.Len64(nd)
}

// nextStretch counts the digits of the stretch of ASCII digits and
// separators that starts the block at p, for prune. ok is false when the
// block is not whole before end, the stretch fills it, or an escape or
// non-ASCII byte or markup that may continue it follows the stretch (see
// markupKeep; a group that reaches back to p may).
func nextStretch(b []byte, p, end int) (digits int, ok bool) {
	if p+blockSize > end {
		return 0, false
	}
	for q := p; q < p+blockSize; q++ {
		switch c := b[q]; {
		case isDigit(c):
			digits++
		case asciiSep[c]:
		case introHigh[c]:
			return digits, false
		case markupStart[c]:
			if c != '=' {
				g := q
				for g > p && isDigit(b[g-1]) {
					g--
				}
				if g > p && (q-g < 4 || q-g > 8) {
					return digits, true
				}
			}
			return digits, !markupLeads(b, q, end)
		default:
			return digits, true
		}
	}
	return 0, false
}

// runStart walks back from the candidate p over ASCII digits and the
// ASCII separators between them, not before lim: the filter reports
// where three digits end, the run starts earlier.
func runStart(b []byte, lim, p int) int {
	for p > lim {
		if isDigit(b[p-1]) {
			p--
			continue
		}
		g := p
		for g > lim && p-g < maxGapUnits && asciiSep[b[g-1]] {
			g--
		}
		if g < p && g > lim && isDigit(b[g-1]) {
			p = g - 1
			continue
		}
		break
	}
	return p
}

// next finds the next PAN at or after s.i, fills m and advances.
func (s *scanner) next(m *Match) bool {
	b := s.b
	n := len(b)
	if s.subK < s.subN || s.subN > 0 && s.subMore() {
		// The matches of a decoded region (see subMatch).
		*m = s.sub[s.subK]
		s.subK++
		s.floor = m.End
		return true
	}
	for {
		if s.ng > 0 {
			if s.window(m) {
				s.floor = m.End
				s.alt = 0 // the run holds a PAN: no second reading (skipAt)
				return true
			}
			s.ng = 0
			s.i = s.afterRun()
		}
		i := s.i
		var p int
		if sh := i - s.bs; sh >= 0 && sh < blockSize && s.bmask>>uint(sh) != 0 {
			p = i + bits.TrailingZeros64(s.bmask>>uint(sh))
		} else if p = s.candSlow(i); p < 0 {
			s.i = n
			return false
		}
		if isDigit(b[p]) {
			// The bulk of candidates: years, ports, times, IPs, hex
			// fragments; measured with ASCII tables only and dropped when
			// they cannot hold a PAN.
			p = runStart(b, i, p)
			// Most runs are one group that neither a separator nor an
			// escape follows: decided off the block's digit mask.
			if off := p - s.bs; off >= 0 && off < blockSize {
				e := p + bits.TrailingZeros64(^(s.bdig >> uint(off)))
				if k := e - p; e-s.bs < blockSize && e < n && !asciiSep[b[e]] && !introHigh[b[e]] &&
					!(markupStart[b[e]] && markupAfter(b, e, k)) &&
					(k < MinDigits || k > MaxDigits || !firstDigitOK[b[p]-'0']) {
					if k >= 2*MinDigits && s.hexRun(p, e) {
						return s.subMatch(m)
					}
					s.i = e
					if k >= MinDigits && tlvMaybe(b, p, e) && s.tlv(p, e, m) {
						s.i = m.End
						return true
					}
					continue
				}
			}
			s.long1 = 0
			end, skip := s.quickRun(p)
			if s.long1 > 0 && s.hexRun(s.long0, s.long1) {
				return s.subMatch(m)
			}
			if skip {
				s.i = end
				continue
			}
		} else if _, w, _ := digitAt(b, p); w > 0 {
			if s.byteaHex(p) {
				return s.subMatch(m)
			}
			s.alt = escDigits(b, p, w) // "50%3782...": "%37" may be no escape (skipAt)
			p = runStart(b, i, p)
		} else if gw, _, _ := gapAt(b, p); gw > 0 && p > i && isDigit(b[p-1]) {
			// An escaped or non-ASCII separator after a digit
			// ("4\u200b1\u200b1..."): the run starts before it.
			s.alt = escDigits(b, p, gw)
			p = runStart(b, i, p)
		} else {
			if b64Sig(b[p]) && s.base64At(p) {
				return s.subMatch(m)
			}
			var alt int
			if p, alt = skipAt(b, p); alt == 0 {
				s.i = p
				continue
			}
			s.alt = alt // digits that end an escape start the run (skipAt)
		}
		s.runEnd = s.collect(p)
		s.i = s.runEnd
		if s.nd < MinDigits {
			s.ng = 0
			s.i = s.afterRun()
			continue
		}
		s.from, s.flags = 0, 0
	}
}

// tlv finds a PAN glued into the fields of a payment message, in a group
// of at least 12 plain digits b[p:e] that starts a run or follows the last
// window found in it, before any window that starts with it (window). A
// group further in is not looked at: the digits left before the PAN could
// join the groups before them into a window that only the masked text
// shows.
//
//   - EMV tag 5A (application PAN): "5A" + a length of 06-0A bytes + the
//     BCD PAN, padded with 'F' when its length is odd ("5A08" + 16
//     digits; the tag's letter ends the run before the length);
//   - EMV tag 57 (track 2 equivalent): "57" + a length + the PAN + 'D' +
//     expiry...: the PAN is the 12-19 digits before the 'D', after "57"
//     (at most eight digits into the group) and a length that can hold
//     it, the expiry and service code (or the length has a hex letter and
//     the group is the PAN);
//   - ISO 8583 field 2 (LLVAR): a group of more than 19 digits that
//     starts with a length 12-19 followed by that many digits.
//
// The digits pass the usual card checks (Luhn, IIN and length) but no
// look-alike rule: the tags are hex, and these runs are too long. The scan
// goes on right after the PAN, as it does in the masked text, where the
// masked digits end the run: another field may start there ("5A08" + a PAN
// + "16" + a PAN ...).
func (s *scanner) tlv(p, e int, m *Match) bool {
	b := s.b
	n := len(b)
	q, nd := 0, 0
	switch {
	case p >= 2 && b[p-1]|0x20 == 'a' && b[p-2] == '5' && b[p] == '0':
		q, nd = p+2, 2*int(b[p+1]-'0')
	case p >= 4 && b[p-1]|0x20 == 'a' && b[p-2] == '0' && b[p-3]|0x20 == 'a' && b[p-4] == '5':
		q, nd = p, 20
	case e-p > MaxDigits && b[p] == '1' && b[p+1]-'2' < 8:
		q, nd = p+2, 10+int(b[p+1]-'0')
		if q+nd > e {
			nd = 0
		}
	}
	if q+nd > e {
		// An odd length: one digit fewer, then the 'F' pad.
		if q+nd-1 == e && e < n && b[e]|0x20 == 'f' {
			nd--
		} else {
			nd = 0
		}
	}
	if nd >= MinDigits && s.tlvPAN(q, nd, m) {
		return true
	}
	// Tag 57: the PAN ends at the 'D'.
	if e < n-1 && b[e]|0x20 == 'd' && isDigit(b[e+1]) {
		if p >= 4 && b[p-4] == '5' && b[p-3] == '7' && isHex(b[p-2]) && isHexLetter(b[p-1]) && s.tlvPAN(p, e-p, m) {
			return true
		}
		for l := MaxDigits; l >= MinDigits; l-- {
			t := e - l - 4
			if t < p || t-p > 7 || b[t] != '5' || b[t+1] != '7' {
				continue
			}
			if ll := int(b[t+2]-'0')*16 + int(b[t+3]-'0'); 2*ll >= l+8 && ll <= 19 && s.tlvPAN(t+4, l, m) {
				return true
			}
		}
	}
	return false
}

// tlvMaybe is tlv's quick test: the digits b[p:e] follow a hex letter
// (5A), run past 19 digits (ISO 8583) or end at a 'D' (57).
func tlvMaybe(b []byte, p, e int) bool {
	return (p > 0 && isHexLetter(b[p-1])) || e-p > MaxDigits || (e < len(b) && b[e]|0x20 == 'd')
}

// tlvPAN checks the nd plain digits at b[q:] as a PAN for tlv and fills m.
func (s *scanner) tlvPAN(q, nd int, m *Match) bool {
	b := s.b
	if nd < MinDigits || nd > MaxDigits {
		return false
	}
	net, ok := identify(b[q : q+nd])
	if !ok || s.d.nets&(1<<net) == 0 {
		return false
	}
	m.Start, m.End, m.Digits, m.Network, m.Encoding = q, q+nd, nd, net, EncGlued
	copy(m.Last4[:], b[q+nd-4:q+nd])
	m.adj = 0
	if q > 0 && isDigit(b[q-1]) {
		m.adj |= adjBefore
	}
	if q+nd < len(b) && isDigit(b[q+nd]) {
		m.adj |= adjAfter
	}
	return true
}

// asciiSep marks the plain ASCII separators; introHigh the bytes that may
// start an escape or a non-ASCII digit or separator.
var (
	asciiSep = func() (t [256]bool) {
		for _, c := range " \t\r\n\v\f-.:/_+,;|\x00" {
			t[c] = true
		}
		return t
	}()
	introHigh = func() (t [256]bool) {
		t['%'], t['\\'], t['&'], t[0x1b] = true, true, true, true // ESC: a terminal escape sequence (csiAt)
		for c := 0x80; c < 0x100; c++ {
			t[c] = true
		}
		return t
	}()
)

// quickRun measures the run of plain ASCII digits and separators at p. It
// reports skip when the run certainly holds no PAN: no window of its groups
// can have 12 digits and a printed shape (see shapeOK: a stretch of groups
// of 3-8 digits plus a last group of 1-8; one group of 12-19 digits that a
// network can start with; twelve one-digit groups), and no escape or
// non-ASCII byte where it ends could continue it. end is where the run's
// last digit ends.
func (s *scanner) quickRun(p int) (end int, skip bool) {
	b := s.b
	n := len(b)
	q := p
	best, cur, ones := 0, 0, 0
	for {
		g0 := q
		q = s.digitsEnd(q)
		switch gs := q - g0; {
		case gs >= 3 && gs <= 8:
			best = max(best, cur+gs)
			cur += gs
			ones = 0
		case gs <= 2:
			best = max(best, cur+gs)
			cur = 0
			if gs == 1 {
				ones++
				best = max(best, ones)
			} else {
				ones = 0
			}
		default:
			if gs >= MinDigits {
				if gs <= MaxDigits && firstDigitOK[b[g0]-'0'] {
					best = MinDigits
				}
				if gs >= 2*MinDigits {
					s.long0, s.long1 = g0, q // next looks for hex of ASCII there
				}
				if g0 == p && tlvMaybe(b, g0, q) {
					best = MinDigits // a payment message's field, perhaps: see tlv
				}
			}
			if q < n && b[q]|0x20 == 'e' && g0 > 0 && b[g0-1] == '.' && sciExp(b, q) > 0 {
				best = MinDigits // "4.111111111111111E15": see sci
			}
			cur, ones = 0, 0
		}
		if best >= MinDigits && s.long1 == 0 {
			// Decided: the run is collected. The rest of it is walked
			// only for a long group that may be hex (long0, long1);
			// walking it to its end for every candidate was quadratic on
			// long runs of short groups.
			return q, false
		}
		g := q
		if off := g - s.bs; off >= 0 && off < blockSize-maxGapUnits {
			g += min(bits.TrailingZeros64(^(s.bsep >> uint(off))), maxGapUnits)
		} else {
			for g < n && g-q < maxGapUnits && asciiSep[b[g]] {
				g++
			}
		}
		if g < n && isDigit(b[g]) && g > q {
			q = g
			continue
		}
		grp := q - g0 // the group right before markup at g (none after separators)
		if g > q {
			grp = 0
		}
		if g < n && (introHigh[b[g]] || (markupStart[b[g]] && markupAfter(b, g, grp))) {
			return q, false
		}
		break
	}
	return q, best < MinDigits
}

// sciExp reads the exponent of a number in scientific notation at b[e]
// ('e' or 'E', an optional '+', one to three digits, no digit or masked
// digit after: masking a neighbour never makes one) and
// returns it if it can make an integer of MinDigits to MaxDigits digits,
// else -1.
func sciExp(b []byte, e int) int {
	q := e + 1
	if q < len(b) && b[q] == '+' {
		q++
	}
	x, q0 := 0, q
	for q < len(b) && isDigit(b[q]) && q-q0 < 3 {
		x = x*10 + int(b[q]-'0')
		q++
	}
	if q == q0 || (q < len(b) && digitOrStarAt(b, q)) || x+1 < MinDigits || x+1 > MaxDigits {
		return -1
	}
	return x
}

// sci reports whether the run's last two groups are a PAN printed as a
// float in scientific notation (Java Double.toString, Jackson, Go's %v of
// a float64: "4.111111111111111E15", "4.111111111111111e+15"): one digit,
// '.', a mantissa of at most x digits and an exponent x of 11 to 18, an
// exact integer of x+1 digits. Its digits (the mantissa padded with
// zeros) are checked like any window's; the match covers the digits as
// written, a prefix of the PAN's, and masking hides them by their place
// in the PAN.
func (s *scanner) sci(m *Match) bool {
	k := s.ng - 2
	g0, g1 := &s.groups[k], &s.groups[k+1]
	b := s.b
	e := int(g1.end)
	if g0.nd != 1 || g0.enc != 0 || g1.enc != 0 || g1.start-g1.gap0 != 1 || b[g1.gap0] != '.' || e >= len(b) || b[e]|0x20 != 'e' {
		return false
	}
	x := sciExp(b, e)
	if x < 0 || int(g1.nd) > x {
		return false
	}
	nd := x + 1
	var digits [MaxDigits]byte
	digits[0] = s.digits[g0.d0]
	copy(digits[1:], s.digits[g1.d0:int(g1.d0)+int(g1.nd)])
	for j := 1 + int(g1.nd); j < nd; j++ {
		digits[j] = '0'
	}
	net, ok := identify(digits[:nd])
	if !ok || s.d.nets&(1<<net) == 0 {
		return false
	}
	m.Start, m.End, m.Digits, m.Network, m.Encoding = int(g0.start), e, nd, net, 0
	copy(m.Last4[:], digits[nd-4:nd])
	m.adj = 0
	if k > 0 {
		m.adj |= adjBefore
	}
	return true
}

// digitsEnd returns the end of the ASCII digits starting at q, read off
// the cached block's digit mask where it can.
func (s *scanner) digitsEnd(q int) int {
	if off := q - s.bs; off >= 0 && off < blockSize {
		q += bits.TrailingZeros64(^(s.bdig >> uint(off)))
		if q-s.bs < blockSize {
			return q
		}
	}
	return q + digitRun(s.b, q)
}

// digitRun returns how many ASCII digits start at b[q], eight bytes at a
// time (no branch per digit: group lengths are unpredictable).
func digitRun(b []byte, q int) int {
	start := q
	for q+8 <= len(b) {
		nonDigit := ^digitMask(binary.LittleEndian.Uint64(b[q:])) & hi1
		if nonDigit != 0 {
			return q + bits.TrailingZeros64(nonDigit)>>3 - start
		}
		q += 8
	}
	for q < len(b) && isDigit(b[q]) {
		q++
	}
	return q - start
}

// collect reads the run of digit groups that starts with a digit at p and
// returns its end.
func (s *scanner) collect(p int) int {
	b := s.b
	n := len(b)
	s.ng, s.nd, s.mk = 0, 0, false
	g := &s.groups[0]
	*g = group{gap0: int32(p), start: int32(p)}
	for {
		if c := b[p]; isDigit(c) {
			// Plain digits, the common case, without decoding.
			if g.nd <= MaxDigits {
				s.digits[s.nd] = c
				s.nd++
			}
			if g.nd < 255 {
				g.nd++
			}
			p++
		} else {
			v, w, e := digitAt(b, p)
			if g.nd <= MaxDigits {
				s.digits[s.nd] = '0' + v
				s.nd++
			}
			if g.nd < 255 {
				g.nd++
			}
			g.enc |= e
			p += w
		}
		if p >= n {
			break
		}
		if isDigit(b[p]) {
			continue
		}
		if p+1 < n && (b[p] == ' ' || b[p] == '-') && isDigit(b[p+1]) {
			// One classic separator between plain digits: a new group.
			g.end = int32(p)
			s.ng++
			if s.ng == maxGroups || s.nd+MaxDigits+1 > maxRunDigit {
				return p
			}
			g = &s.groups[s.ng]
			*g = group{gap0: int32(p), start: int32(p + 1), d0: uint8(s.nd)}
			p++
			continue
		}
		if _, w, _ := digitAt(b, p); w > 0 {
			continue
		}
		// A gap: up to maxGapUnits separators, then a digit.
		q, units, visible, quotes := p, 0, 0, 0
		var ge Encoding
		for q < n && units < maxGapUnits {
			w, k, e := gapAt(b, q)
			if w == 0 {
				break
			}
			if k != gapInvisible {
				visible++
			}
			if k == gapQuote {
				quotes++
			}
			ge |= e
			q += w
			units++
		}
		if units == 0 || q >= n || (quotes > 0 && quotes == visible) {
			break // no gap, or quotes alone ("4111""1111" is not a split number)
		}
		if _, w, _ := digitAt(b, q); w == 0 {
			break
		}
		if visible == 0 {
			g.enc |= ge // invisible: the digits stay one group
			p = q
			continue
		}
		if visible > 1 {
			ge |= EncSeparators
		}
		s.mk = s.mk || ge&EncMarkup != 0
		g.end = int32(p)
		s.ng++
		if s.ng == maxGroups || s.nd+MaxDigits+1 > maxRunDigit {
			return s.cut(p) // cut a very long run here; the rest starts a new one
		}
		g = &s.groups[s.ng]
		*g = group{gap0: int32(p), start: int32(q), d0: uint8(s.nd), genc: ge}
		p = q
	}
	g.end = int32(p)
	s.ng++
	return p
}

// cut ends a very long run at p, the end of its last group. A last group
// of one digit followed by '.' is left to the next run, which may read it
// as the integer part of a float in scientific notation (see sci), as it
// would if masking shortened this run.
func (s *scanner) cut(p int) int {
	if g := &s.groups[s.ng-1]; s.ng > 1 && g.nd == 1 && p < len(s.b) && s.b[p] == '.' {
		s.ng--
		s.nd--
		return int(g.gap0)
	}
	return p
}

// firstOK reports whether a group of nd digits can start a window.
func firstOK(nd uint8) bool {
	return nd <= 8 || (nd >= MinDigits && nd <= MaxDigits)
}

// shapeOK reports whether groups i..j have the shape of a printed PAN.
func (s *scanner) shapeOK(i, j int) bool {
	g := s.groups[i : j+1]
	if len(g) == 1 {
		return g[0].nd >= MinDigits && g[0].nd <= MaxDigits
	}
	for k := 1; s.mk && k < len(g); k++ {
		if g[k].genc&EncMarkup != 0 {
			return s.markupShape(i, j)
		}
	}
	if s.smallGroups(i, j) || (g[0].nd < 3 && g[1].nd == 3 && g[len(g)-1].nd == 3 && s.thousands(i, j)) {
		return true
	}
	if g[0].nd < 3 || g[0].nd > 8 || g[len(g)-1].nd > 8 {
		return false
	}
	for k := 1; k < len(g)-1; k++ {
		if g[k].nd < 3 || g[k].nd > 8 {
			return false
		}
	}
	return true
}

// thousands reports whether groups i..j (at least two) are a number
// printed with locale thousands separators ("4,111,111,111,111,111",
// "4.111.111...", "4 111 111...", U+202F): groups after the first of
// exactly three digits, all after one separator written alike. (A first
// group of three or more is a printed shape anyway.)
func (s *scanner) thousands(i, j int) bool {
	for k := i + 1; k <= j; k++ {
		if s.groups[k].nd != 3 || (k > i+1 && !s.sameGap(i+1, k)) {
			return false
		}
	}
	return true
}

// markupShape reports whether groups i..j, split by quotes or tags, are a
// card number printed in groups: 4-8 digits each, the last 1-8, or one
// digit per group (<span>4</span><span>1</span>...). Quoted lists and
// tables of small numbers ("12","345","678",...) are not.
func (s *scanner) markupShape(i, j int) bool {
	ones := true
	for k := i; k <= j; k++ {
		ones = ones && s.groups[k].nd == 1
	}
	if ones {
		return true
	}
	for k := i; k <= j; k++ {
		if nd := s.groups[k].nd; nd > 8 || nd < 4 && k < j {
			return false
		}
	}
	return true
}

// smallGroups reports whether groups i..j are a number printed one digit
// at a time: every group has one or two digits (two where an invisible
// character or a lost separator joined two) and there are at least six.
func (s *scanner) smallGroups(i, j int) bool {
	if j-i+1 < 6 {
		return false
	}
	for k := i; k <= j; k++ {
		if s.groups[k].nd > 2 {
			return false
		}
	}
	return true
}

// sameGap reports whether the gaps before groups k and l are written alike.
func (s *scanner) sameGap(k, l int) bool {
	a, c := &s.groups[k], &s.groups[l]
	return string(s.b[a.gap0:a.start]) == string(s.b[c.gap0:c.start])
}

// window finds the next PAN among the windows of whole groups of the
// current run, starting at group s.from: for each start, the longest
// window first, windows with one consistent separator before mixed ones.
func (s *scanner) window(m *Match) bool {
	if i := s.from; i < s.ng {
		// A payment message's field (see tlv), before the windows that
		// start with its group.
		if g := &s.groups[i]; g.nd >= MinDigits && g.enc == 0 && tlvMaybe(s.b, int(g.start), int(g.end)) && s.tlv(int(g.start), int(g.end), m) {
			s.from, s.runEnd = s.ng, m.End // the scan goes on after the PAN
			if i > 0 {
				m.adj |= adjBefore
			}
			if i < s.ng-1 {
				m.adj |= adjAfter // more groups: keep none of its digits
			}
			return true
		}
	}
	sciAt := -1 // the group that may start a float (see sci)
	if s.ng >= 2 && s.groups[s.ng-2].nd == 1 {
		sciAt = s.ng - 2
	}
	for i := s.from; i < s.ng; i++ {
		if i == sciAt && s.sci(m) {
			s.from = s.ng
			return true
		}
		if !firstOK(s.groups[i].nd) {
			continue
		}
		// jmax: the last group that keeps the window within 19 digits;
		// uni: the last group up to which the gaps are all alike.
		tot, jmax, uni := 0, i-1, i
		for j := i; j < s.ng; j++ {
			if tot+int(s.groups[j].nd) > MaxDigits {
				break
			}
			tot += int(s.groups[j].nd)
			jmax = j
			if j > i+1 && uni == j-1 && s.sameGap(i+1, j) {
				uni = j
			} else if j == i+1 {
				uni = j
			}
		}
		if tot < MinDigits {
			continue
		}
		for pass := 0; pass < 2; pass++ {
			t := tot
			for j := jmax; j >= i && t >= MinDigits; j-- {
				if (j <= uni) == (pass == 0) && s.shapeOK(i, j) && s.check(i, j, t, j <= uni, m) {
					s.from = j + 1
					return true
				}
				t -= int(s.groups[j].nd)
			}
		}
		if s.flags&runReject != 0 {
			return false
		}
	}
	return false
}

// check validates the window of groups i..j (nd digits) and fills m.
func (s *scanner) check(i, j, nd int, uniform bool, m *Match) bool {
	gi, gj := &s.groups[i], &s.groups[j]
	digits := s.digits[gi.d0 : int(gi.d0)+nd]
	net, ok := identify(digits)
	if !ok || s.d.nets&(1<<net) == 0 || s.lookalike(i, j) {
		return false
	}
	b := s.b
	start, end := int(gi.start), int(gj.end)
	var enc Encoding
	for k := i; k <= j; k++ {
		enc |= s.groups[k].enc
		if k > i {
			enc |= s.groups[k].genc
		}
	}
	if !uniform {
		enc |= EncSeparators
	}
	if (start > 0 && isLetter(b[start-1])) || (end < len(b) && isLetter(b[end])) {
		enc |= EncGlued
	}
	m.Start, m.End, m.Digits, m.Network, m.Encoding = start, end, nd, net, enc
	copy(m.Last4[:], digits[nd-4:])
	m.adj = 0
	if i > 0 {
		m.adj |= adjBefore
	}
	if j < s.ng-1 {
		m.adj |= adjAfter
	}
	return true
}

// lookalike reports whether the window i..j, though a valid card number,
// is something else: part of an IBAN, phone number, IPv4 address, decimal
// fraction, hex string or UUID.
func (s *scanner) lookalike(i, j int) bool {
	b := s.b
	if s.flags&runChecked == 0 {
		s.flags |= runChecked
		s.runChecks()
	}
	if s.flags&runReject != 0 {
		return true
	}
	for k := i; k <= j; k++ {
		if s.groups[k].alike {
			return true
		}
	}
	gi := &s.groups[i]
	start, end := int(gi.start), int(s.groups[j].end)
	// "0.4532015112830366", "1.2345678901234567e-05": a fraction.
	if i > 0 && gi.nd >= 9 && gi.start-gi.gap0 == 1 && b[gi.gap0] == '.' {
		return true
	}
	if i == 0 && gi.nd >= 9 && start >= 2 && b[start-1] == '.' && digitOrStarBefore(b, start-1) {
		return true // the integer part was masked
	}
	if i == j && gi.enc == 0 && hexContext(b, start, end) {
		return true
	}
	return uuidAround(b, start, end)
}

// runChecks looks at the run as a whole once: a '+' phone number rejects
// it; the groups of an IBAN it starts with and dotted quads (IPv4
// addresses) are marked as look-alikes, so windows after them are still
// tried ("DE89370400440532013000,4111...").
func (s *scanner) runChecks() {
	b := s.b
	g := s.groups[:s.ng]
	start := int(g[0].start)
	// E.164: at most 15 digits, written contiguously or after a country
	// code of 1-3 digits ("+44 20 7946 0958"). A '+' before a number
	// printed like a card ("+4111 1111 1111 1111") does not make it one.
	plain := true
	for k := range g {
		plain = plain && g[k].enc == 0
	}
	// In URL and form encoding '+' is a space: after a letter or digit
	// ("comment=my+card+is+3782...", "a+4111...") it is no prefix.
	if start > 0 && b[start-1] == '+' && (start < 2 || !(isLetter(b[start-2]) || isDigit(b[start-2]))) && plain && s.nd <= 15 && (len(g) == 1 || (g[0].nd <= 3 && !s.smallGroups(0, len(g)-1))) {
		s.flags |= runReject
		return
	}
	if e := ibanAt(b, start); e > start {
		for k := range g {
			if int(g[k].start) < e {
				g[k].alike = true
			}
		}
	}
	dot := func(l int) bool { return g[l].start-g[l].gap0 == 1 && b[g[l].gap0] == '.' }
	for k := 0; k+3 < len(g); k++ {
		// A dotted quad of plain 0-255 numbers, not part of a longer
		// dotted chain: an IPv4 address (a port may follow).
		quad := (k == 0 || !dot(k)) && (k+4 >= len(g) || !dot(k+4))
		for l := k; l < k+4 && quad; l++ {
			if g[l].nd > 3 || g[l].enc != 0 || (l > k && !dot(l)) {
				quad = false
				break
			}
			v := 0
			for _, c := range s.digits[g[l].d0 : g[l].d0+g[l].nd] {
				v = v*10 + int(c-'0')
			}
			quad = v <= 255
		}
		if quad {
			for l := k; l < k+4; l++ {
				g[l].alike = true
			}
		}
	}
}

// hexContext reports whether the plain digit run b[start:end] is part of a
// hex string: hex letters then more digits on either side (a hash, a hex
// id), or a "0x" prefix. Letters alone beside it ("card4111...", "...1111x")
// do not count: that is a PAN glued to a word.
func hexContext(b []byte, start, end int) bool {
	p := start
	for p > 0 && isHexLetter(b[p-1]) {
		p--
	}
	if p < start && p > 0 && digitOrStarBefore(b, p) {
		t := p - 1
		for t > 0 && start-t < 64 && isHex(b[t-1]) {
			t--
		}
		// The letters end an escape ("%3D", "\u00e9", "\xff"), not a hex string.
		escape := (t > 0 && b[t-1] == '%' && start-t <= 2) ||
			(t > 1 && b[t-2] == '\\' && ((b[t-1] == 'u' && start-t <= 4) || (b[t-1] == 'x' && start-t <= 2)))
		if !escape {
			return true
		}
	}
	if p >= 2 && (b[p-1]|0x20) == 'x' && b[p-2] == '0' && (p < 3 || !digitOrStarBefore(b, p-2)) {
		// "0x" starts a hex literal; after digits ("...10x4111...") the
		// '0' ends a number, and masking that number must not change the
		// verdict.
		return true
	}
	q := end
	for q < len(b) && isHexLetter(b[q]) {
		q++
	}
	return q > end && q < len(b) && digitOrStarAt(b, q)
}

// starForms are the ways Mask writes a masked digit.
var starForms = [...]string{"*", "%2A", "%2a", "\\u002a", "\\u002A", "\\x2a", "&#42;", "&#x2a;"}

// digitOrStarBefore reports whether b[:p] ends with a digit or a masked
// digit. Context rules treat a masked digit like a digit, so masking one
// PAN never changes the verdict on its neighbours (masking is idempotent).
func digitOrStarBefore(b []byte, p int) bool {
	if isDigit(b[p-1]) {
		return true
	}
	for _, f := range starForms {
		if p >= len(f) && string(b[p-len(f):p]) == f {
			return true
		}
	}
	return false
}

// digitOrStarAt reports whether b[q:] starts with a digit or a masked digit.
func digitOrStarAt(b []byte, q int) bool {
	if isDigit(b[q]) {
		return true
	}
	for _, f := range starForms {
		if q+len(f) <= len(b) && string(b[q:q+len(f)]) == f {
			return true
		}
	}
	return false
}

// uuidAround reports whether b[start:end] lies inside a UUID
// (8-4-4-4-12 hex digits).
func uuidAround(b []byte, start, end int) bool {
	p := start
	for p > 0 && start-p < 36 && (isHex(b[p-1]) || b[p-1] == '-') {
		p--
	}
	q := end
	for q < len(b) && q-start < 36 && (isHex(b[q]) || b[q] == '-') {
		q++
	}
	for _, u := range [2]int{p, q - 36} {
		if u < p || u > start || u+36 > q || u+36 < end {
			continue
		}
		ok := true
		for k := 0; k < 36 && ok; k++ {
			c := b[u+k]
			if k == 8 || k == 13 || k == 18 || k == 23 {
				ok = c == '-'
			} else {
				ok = isHex(c)
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// ibanAt returns where the valid IBAN that the digit run starting at start
// belongs to ends, or -1: walking back over upper-case letters, digits and
// single spaces reaches a country code and check digits, and the whole
// string passes the ISO 13616 mod-97 check.
func ibanAt(b []byte, start int) int {
	p := start
	for k := 0; p > 0 && k < 40; k++ {
		c := b[p-1]
		if isUpper(c) || isDigit(c) || ((c == ' ' || c == '+') && p >= 2 && (isUpper(b[p-2]) || isDigit(b[p-2]))) {
			p--
			continue
		}
		if c == '0' && p >= 4 && b[p-2] == '2' && b[p-3] == '%' && (isUpper(b[p-4]) || isDigit(b[p-4])) {
			p -= 3
			continue
		}
		break
	}
	// Any token of the chain may be the country code ("INFO DE89 3704
	// ...", "ref GB29 NWBK ..."): try each, nearest last.
	for q := p; q < start; q++ {
		if q == p || b[q-1] == ' ' || b[q-1] == '+' || b[q-1] == '0' {
			if e := ibanFrom(b, q); e >= 0 {
				return e
			}
		}
	}
	return ibanFrom(b, start)
}

// ibanFrom returns where the valid IBAN that starts at p (letters, digits
// and single spaces, '+' or "%20" between them) ends, or -1. Only the
// length registered for its country counts (see ibanLen), and the IBAN
// must end where its token does (no letter or digit right after it): a
// short code before a card number ("ref TX01 4331 ...") is none, where a
// mod-97 hit at any length from 15 took one PAN in twelve for an IBAN.
func ibanFrom(b []byte, p int) int {
	if p+4 > len(b) || !isUpper(b[p]) || !isUpper(b[p+1]) || !isDigit(b[p+2]) || !isDigit(b[p+3]) {
		return -1
	}
	l := int(ibanLen[int(b[p]-'A')*26+int(b[p+1]-'A')])
	if l == 0 {
		return -1
	}
	var chars [34]byte
	n, q := 0, p
	for ; q < len(b) && n < l; q++ {
		c := b[q]
		if isUpper(c) || isDigit(c) {
			chars[n] = c
			n++
			continue
		}
		if c == '%' && q+3 < len(b) && b[q+1] == '2' && b[q+2] == '0' {
			q += 2 // "%20" in a URL
		} else if c != ' ' && c != '+' {
			break
		}
		if q+1 >= len(b) || !(isUpper(b[q+1]) || isDigit(b[q+1])) {
			break
		}
	}
	if n < l || (q < len(b) && (isLetter(b[q]) || isDigit(b[q]))) {
		return -1
	}
	// Mod-97 over the string rotated by four.
	r := 0
	for _, c := range chars[4:l] {
		r = mod97(r, c)
	}
	for _, c := range chars[:4] {
		r = mod97(r, c)
	}
	if r != 1 {
		return -1
	}
	return q
}

// ibanLen is the IBAN length of each country of the SWIFT IBAN registry
// (ISO 13616), indexed by its two letters; 0: no IBAN.
var ibanLen = func() (t [26 * 26]uint8) {
	const reg = "AD24AE23AL28AT20AZ28BA20BE16BG22BH22BI27BR29BY28CH21CR22CY28CZ24" +
		"DE22DJ27DK18DO28EE20EG29ES24FI18FK18FO18FR27GB22GE22GI23GL18GR27" +
		"GT28HN28HR21HU28IE22IL23IQ23IS26IT27JO30KW30KZ20LB28LC32LI21LT20" +
		"LU20LV21LY25MC27MD24ME22MK19MN20MR27MT31MU30NI28NL18NO15OM23PK24" +
		"PL28PS29PT25QA29RO24RS22RU33SA24SC31SD18SE24SI19SK24SM27SO23ST25" +
		"SV28TL23TN24TR26UA29VA22VG24XK20YE30"
	for k := 0; k+4 <= len(reg); k += 4 {
		t[int(reg[k]-'A')*26+int(reg[k+1]-'A')] = (reg[k+2]-'0')*10 + reg[k+3] - '0'
	}
	return t
}()

// mod97 appends the IBAN digit or letter c to the remainder r.
func mod97(r int, c byte) int {
	if isDigit(c) {
		return (r*10 + int(c-'0')) % 97
	}
	return (r*100 + int(c-'A'+10)) % 97
}
