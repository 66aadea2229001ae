package pan

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Encoding is the set of ways a PAN was written that hide it from a search
// for plain ASCII digits grouped by one consistent space, dash or dot. The
// zero value is "plain". Scanners report it so an owner knows what to fix
// (an application that JSON-escapes digits, a log line that glues a label to
// the number, ...).
type Encoding uint16

// Encodings the detector sees through.
const (
	EncPercent       Encoding = 1 << iota // URL percent-encoding: %34, %2534, %EF%BC%94
	EncJSONEscape                         // JSON / JavaScript string escapes: \u0034, \\u0034
	EncHexEscape                          // C-style byte escapes: \x34
	EncHTMLEntity                         // HTML / XML character references: &#52; &#x34; &nbsp;
	EncUnicodeDigits                      // decimal digits of another script: ４, ٤, ४ (Unicode Nd)
	EncSeparators                         // separators other than one consistent space, dash or dot: tabs, ':', '/', mixed, several, line breaks, NBSP, en dash
	EncInvisible                          // zero-width characters or soft hyphens between digits
	EncGlued                              // a letter right before or after the number ("PAN4111...", "...1111x")

	numEncodings = iota
)

var encodingNames = [numEncodings]string{
	"percent", "json-escape", "hex-escape", "html-entity", "unicode-digits", "separators", "invisible", "glued",
}

// String returns "plain" for the zero value, else the names of the set bits
// joined by '+' ("percent+separators"). The names are stable: they appear in
// scan output (table, JSON, SARIF).
func (e Encoding) String() string {
	if e == 0 {
		return "plain"
	}
	var parts []string
	for i := 0; i < numEncodings; i++ {
		if e&(1<<i) != 0 {
			parts = append(parts, encodingNames[i])
		}
	}
	return strings.Join(parts, "+")
}

// ndZeros holds the code point of the digit zero of every block of ten
// Unicode decimal digits (category Nd) outside ASCII, in ascending order.
// Unicode keeps every Nd script's digits contiguous, zero first, so a
// digit's value is its distance from its block's zero.
var ndZeros = func() []rune {
	var zs []rune
	add := func(lo, hi, stride uint32) {
		for r := lo; r <= hi; r += stride {
			if r >= 0x80 && unicode.Is(unicode.Nd, rune(r)) && (len(zs) == 0 || rune(r) >= zs[len(zs)-1]+10) {
				zs = append(zs, rune(r))
			}
		}
	}
	for _, r := range unicode.Nd.R16 {
		add(uint32(r.Lo), uint32(r.Hi), uint32(r.Stride))
	}
	for _, r := range unicode.Nd.R32 {
		add(r.Lo, r.Hi, r.Stride)
	}
	return zs
}()

// ndLead marks the UTF-8 lead bytes of non-ASCII decimal digits, so most
// non-ASCII text (Latin accents, Cyrillic, CJK) is skipped without decoding.
var ndLead = func() (t [256]bool) {
	var buf [4]byte
	for _, z := range ndZeros {
		for d := rune(0); d < 10; d++ {
			utf8.EncodeRune(buf[:], z+d)
			t[buf[0]] = true
		}
	}
	return t
}()

// ndValue returns the value of r if it is a decimal digit of any script.
func ndValue(r rune) (byte, bool) {
	if r < 0x80 {
		if r >= '0' && r <= '9' {
			return byte(r - '0'), true
		}
		return 0, false
	}
	lo, hi := 0, len(ndZeros)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ndZeros[m] <= r {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return 0, false
	}
	z := ndZeros[lo-1]
	if r-z < 10 && unicode.Is(unicode.Nd, r) {
		return byte(r - z), true
	}
	return 0, false
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func hex2(b []byte, p int) (byte, bool) {
	if p+1 >= len(b) {
		return 0, false
	}
	h, ok1 := unhex(b[p])
	l, ok2 := unhex(b[p+1])
	return h<<4 | l, ok1 && ok2
}

// pctByte decodes one percent-escaped byte at p ("%34", or "%2534" encoded
// twice) and returns it and the escape's width, or width 0.
func pctByte(b []byte, p int) (byte, int) {
	if p >= len(b) || b[p] != '%' {
		return 0, 0
	}
	x, ok := hex2(b, p+1)
	if !ok {
		return 0, 0
	}
	if x == '%' {
		if y, ok := hex2(b, p+3); ok {
			return y, 5
		}
	}
	return x, 3
}

// bsByte decodes one "\xNN" byte escape at p (or "\\xNN").
func bsByte(b []byte, p int) (byte, int) {
	q := p
	if q < len(b) && b[q] == '\\' {
		q++
		if q < len(b) && b[q] == '\\' {
			q++
		}
	}
	if q == p || q >= len(b) || b[q] != 'x' {
		return 0, 0
	}
	x, ok := hex2(b, q+1)
	if !ok {
		return 0, 0
	}
	return x, q + 3 - p
}

// multiByte decodes the UTF-8 sequence whose lead byte lead was read from an
// escape of width w at p, reading the continuation bytes with dec.
func multiByte(b []byte, p int, lead byte, w int, dec func([]byte, int) (byte, int)) (rune, int) {
	n := 0
	switch {
	case lead >= 0xF0:
		n = 4
	case lead >= 0xE0:
		n = 3
	case lead >= 0xC0:
		n = 2
	default:
		return utf8.RuneError, 0
	}
	var buf [4]byte
	buf[0] = lead
	q := p + w
	for i := 1; i < n; i++ {
		x, wi := dec(b, q)
		if wi == 0 {
			return utf8.RuneError, 0
		}
		buf[i] = x
		q += wi
	}
	r, size := utf8.DecodeRune(buf[:n])
	if size != n {
		return utf8.RuneError, 0
	}
	return r, q - p
}

// uEscape decodes a "\uXXXX" escape at p (also "\\uXXXX", and a UTF-16
// surrogate pair of either) and returns the rune and the width.
func uEscape(b []byte, p int) (rune, int) {
	q := p + 1
	if q < len(b) && b[q] == '\\' {
		q++
	}
	if q+4 >= len(b) || b[q] != 'u' {
		return 0, 0
	}
	var r rune
	for i := 1; i <= 4; i++ {
		h, ok := unhex(b[q+i])
		if !ok {
			return 0, 0
		}
		r = r<<4 | rune(h)
	}
	w := q + 5 - p
	if r >= 0xD800 && r < 0xDC00 && p+w < len(b) && b[p+w] == '\\' {
		if lo, w2 := uEscape(b, p+w); w2 > 0 && lo >= 0xDC00 && lo < 0xE000 {
			return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), w + w2
		}
	}
	return r, w
}

// entity decodes an HTML numeric character reference at p ("&#52;",
// "&#x34;", and "&amp;#52;" escaped twice) and returns the rune and the
// width. Named references are returned as -1 - index into namedEntities.
func entity(b []byte, p int) (rune, int) {
	q := p + 1
	if q+4 < len(b) && string(b[q:q+4]) == "amp;" {
		q += 4
	}
	if q >= len(b) {
		return 0, 0
	}
	if b[q] != '#' {
		for i, name := range namedEntities {
			if q+len(name) <= len(b) && string(b[q:q+len(name)]) == name {
				return rune(-1 - i), q + len(name) - p
			}
		}
		return 0, 0
	}
	q++
	hexa := q < len(b) && (b[q] == 'x' || b[q] == 'X')
	if hexa {
		q++
	}
	var r rune
	n := 0
	for ; q < len(b) && n < 8; q++ {
		c := b[q]
		var v byte
		var ok bool
		if hexa {
			v, ok = unhex(c)
		} else if c >= '0' && c <= '9' {
			v, ok = c-'0', true
		}
		if !ok {
			break
		}
		if hexa {
			r = r<<4 | rune(v)
		} else {
			r = r*10 + rune(v)
		}
		n++
	}
	if n == 0 || q >= len(b) || b[q] != ';' {
		return 0, 0
	}
	return r, q + 1 - p
}

// namedEntities are the named character references that can stand between
// the digits of a card number (all separators).
var namedEntities = [...]string{
	"nbsp;", "ensp;", "emsp;", "thinsp;", "hairsp;", "numsp;", "puncsp;", "shy;", "ndash;", "mdash;",
	"minus;", "hyphen;", "dash;", "zwj;", "zwnj;", "ZeroWidthSpace;", "NoBreak;", "Tab;", "NewLine;",
	"colon;", "sol;", "period;", "lowbar;", "NonBreakingSpace;",
}

// digitAt decodes a decimal digit written at b[p] in any encoding the
// detector knows and returns its value, the width of its written form and
// how it was encoded; w == 0 when no digit starts at p.
func digitAt(b []byte, p int) (v byte, w int, e Encoding) {
	c := b[p]
	switch {
	case c-'0' < 10:
		return c - '0', 1, 0
	case c == '%':
		x, w := pctByte(b, p)
		if w == 0 {
			return 0, 0, 0
		}
		if x-'0' < 10 {
			return x - '0', w, EncPercent
		}
		if ndLead[x] {
			r, w := multiByte(b, p, x, w, pctByte)
			if v, ok := ndValue(r); ok && w > 0 {
				return v, w, EncPercent | EncUnicodeDigits
			}
		}
	case c == '\\':
		if r, w := uEscape(b, p); w > 0 {
			if v, ok := ndValue(r); ok {
				e := EncJSONEscape
				if r >= 0x80 {
					e |= EncUnicodeDigits
				}
				return v, w, e
			}
			return 0, 0, 0
		}
		x, w := bsByte(b, p)
		if w == 0 {
			return 0, 0, 0
		}
		if x-'0' < 10 {
			return x - '0', w, EncHexEscape
		}
		if ndLead[x] {
			r, w := multiByte(b, p, x, w, bsByte)
			if v, ok := ndValue(r); ok && w > 0 {
				return v, w, EncHexEscape | EncUnicodeDigits
			}
		}
	case c == '&':
		if r, w := entity(b, p); w > 0 {
			if v, ok := ndValue(r); ok {
				e := EncHTMLEntity
				if r >= 0x80 {
					e |= EncUnicodeDigits
				}
				return v, w, e
			}
		}
	case ndLead[c]:
		r, size := utf8.DecodeRune(b[p:])
		if v, ok := ndValue(r); ok {
			return v, size, EncUnicodeDigits
		}
	}
	return 0, 0, 0
}

// Gap kinds: what a separator unit between two digits is.
const (
	gapNone      = iota
	gapStd       // one ASCII space, dash, dot or '+' (URL space): the classic printings
	gapOther     // any other visible separator
	gapInvisible // zero-width characters and soft hyphens: the digits look contiguous
)

// sepRune classifies a decoded character as a separator.
func sepRune(r rune) int {
	switch r {
	case ' ', '-', '.', '+':
		return gapStd
	case '\t', '\r', '\n', ':', '/', '_', 0xA0, 0x1680, 0x202F, 0x205F, 0x3000,
		0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, 0x2212, 0x2043, 0xFE58, 0xFE63, 0xFF0D, 0xFF0E, 0xFF1A, 0xFF0F:
		return gapOther
	case 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD, 0x180E:
		return gapInvisible
	}
	if r >= 0x2000 && r <= 0x200A {
		return gapOther
	}
	return gapNone
}

// namedKind classifies a named entity (index into namedEntities).
func namedKind(i int) int {
	switch namedEntities[i] {
	case "shy;", "zwj;", "zwnj;", "ZeroWidthSpace;", "NoBreak;":
		return gapInvisible
	}
	return gapOther
}

// gapAt decodes one separator unit at b[p] in any encoding and returns its
// width, kind and encoding; w == 0 when none starts at p.
func gapAt(b []byte, p int) (w, kind int, e Encoding) {
	c := b[p]
	switch {
	case c == ' ' || c == '-' || c == '.' || c == '+':
		return 1, gapStd, 0
	case c == '\t' || c == '\r' || c == '\n' || c == ':' || c == '/' || c == '_':
		return 1, gapOther, EncSeparators
	case c == '%':
		x, w := pctByte(b, p)
		if w == 0 {
			return 0, gapNone, 0
		}
		r := rune(x)
		if x >= 0xC0 {
			r, w = multiByte(b, p, x, w, pctByte)
		}
		if k := sepRune(r); k != gapNone && w > 0 {
			return w, k, EncPercent | sepEnc(k)
		}
	case c == '\\':
		if p+1 < len(b) {
			switch b[p+1] {
			case 'n', 't', 'r', '/':
				return 2, gapOther, EncJSONEscape | EncSeparators
			}
		}
		if r, w := uEscape(b, p); w > 0 {
			if k := sepRune(r); k != gapNone {
				return w, k, EncJSONEscape | sepEnc(k)
			}
			return 0, gapNone, 0
		}
		if x, w := bsByte(b, p); w > 0 {
			r := rune(x)
			if x >= 0xC0 {
				r, w = multiByte(b, p, x, w, bsByte)
			}
			if k := sepRune(r); k != gapNone && w > 0 {
				return w, k, EncHexEscape | sepEnc(k)
			}
		}
	case c == '&':
		r, w := entity(b, p)
		if w == 0 {
			return 0, gapNone, 0
		}
		k := gapNone
		if r < 0 {
			k = namedKind(int(-1 - r))
		} else {
			k = sepRune(r)
		}
		if k != gapNone {
			return w, k, EncHTMLEntity | sepEnc(k)
		}
	case c >= 0xC2:
		r, size := utf8.DecodeRune(b[p:])
		if k := sepRune(r); k != gapNone {
			return size, k, sepEnc(k)
		}
	}
	return 0, gapNone, 0
}

func sepEnc(k int) Encoding {
	switch k {
	case gapOther:
		return EncSeparators
	case gapInvisible:
		return EncInvisible
	}
	return 0
}

// skipWidth returns how far to move past a byte at p that starts neither a
// digit nor a run: a whole escape or character reference (so the digits
// inside "%20", "\u00e9" or "&#1234;" are never read as data), a whole
// UTF-8 character, or one byte.
func skipWidth(b []byte, p int) int {
	switch c := b[p]; {
	case c == '%':
		if _, w := pctByte(b, p); w > 0 {
			return w
		}
	case c == '\\':
		if _, w := uEscape(b, p); w > 0 {
			return w
		}
		if _, w := bsByte(b, p); w > 0 {
			return w
		}
		if p+1 < len(b) && (b[p+1]|0x20)-'a' < 26 {
			return 2 // "\n", "\t": a letter escape; a digit after '\' is data
		}
	case c == '&':
		if _, w := entity(b, p); w > 0 {
			return w
		}
	case c >= 0xC0:
		_, size := utf8.DecodeRune(b[p:])
		return size
	}
	return 1
}
