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
	EncPercent         Encoding = 1 << iota // URL percent-encoding: %34, %2534, %EF%BC%94
	EncJSONEscape                           // JSON / JavaScript string escapes: \u0034, \\u0034
	EncHexEscape                            // C-style byte escapes: \x34
	EncHTMLEntity                           // HTML / XML character references: &#52; &#x34; &nbsp;
	EncUnicodeDigits                        // decimal digits of another script: ４, ٤, ४ (Unicode Nd); superscript, subscript, circled digits
	EncSeparators                           // separators other than one consistent space, dash or dot: tabs, ':', '/', mixed, several, line breaks, NBSP, en dash
	EncInvisible                            // zero-width, bidi, other format characters or soft hyphens between digits
	EncGlued                                // a letter right before or after the number ("PAN4111...", "...1111x")
	EncOctalEscape                          // C / shell / PostgreSQL octal byte escapes: \064
	EncHexASCII                             // the hex of the ASCII text: 34313131... (0x..., X'...', \x..., hex dumps)
	EncBase64                               // inside base64 (standard or URL alphabet): JWT payloads, Basic auth, blobs
	EncMarkup                               // quotes or tags between digit groups: "4111","1111",..., 4111<span>1111</span>
	EncQuotedPrintable                      // MIME quoted-printable inside the number: a soft line break (11=\r\n11), =C2=A0, =EF=BC=94

	numEncodings = iota
)

var encodingNames = [numEncodings]string{
	"percent", "json-escape", "hex-escape", "html-entity", "unicode-digits", "separators", "invisible", "glued",
	"octal-escape", "hex-ascii", "base64", "markup", "quoted-printable",
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

// ndLead marks the UTF-8 lead bytes of non-ASCII decimal digits (and of
// superscript, subscript and circled digits: noDigits), so most
// non-ASCII text (Latin accents, Cyrillic, CJK) is skipped without decoding.
var ndLead = func() (t [256]bool) {
	var buf [4]byte
	for _, z := range ndZeros {
		for d := rune(0); d < 10; d++ {
			utf8.EncodeRune(buf[:], z+d)
			t[buf[0]] = true
		}
	}
	for _, d := range noDigits {
		utf8.EncodeRune(buf[:], d.lo)
		t[buf[0]] = true
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
	if lo > 0 {
		if z := ndZeros[lo-1]; r-z < 10 && unicode.Is(unicode.Nd, r) {
			return byte(r - z), true
		}
	}
	return noValue(r)
}

// noDigits are the numeric characters with a digit value that are no
// decimal digits (Unicode No) and that people write numbers in:
// superscripts, subscripts, circled digits. Each range holds consecutive
// values from v.
var noDigits = [...]struct {
	lo, hi rune
	v      byte
}{
	{0xB2, 0xB3, 2}, {0xB9, 0xB9, 1}, {0x2070, 0x2070, 0}, {0x2074, 0x2079, 4}, {0x2080, 0x2089, 0},
	{0x2460, 0x2468, 1}, {0x24EA, 0x24EA, 0}, {0x24F5, 0x24FD, 1}, {0x24FF, 0x24FF, 0},
	{0x2776, 0x277E, 1}, {0x2780, 0x2788, 1}, {0x278A, 0x2792, 1},
}

// exponent reports whether r at b[p] is a superscript or subscript digit
// right after an ASCII digit: an exponent or index ("2²⁵⁶ - 2²²⁴ + ...",
// "10⁹"), not a digit of the same number.
func exponent(b []byte, p int, r rune) bool {
	if p == 0 || !isDigit(b[p-1]) || r > 0x2089 {
		return false
	}
	_, ok := noValue(r)
	return ok
}

// noValue returns the digit value of a superscript, subscript or circled
// digit (see noDigits).
func noValue(r rune) (byte, bool) {
	if r < 0xB2 || r > 0x2792 {
		return 0, false
	}
	for _, d := range noDigits {
		if r >= d.lo && r <= d.hi {
			return d.v + byte(r-d.lo), true
		}
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

// maxDepth is how many layers of escaping the decoder sees through: a digit
// JSON-escaped inside an HTML entity inside a URL ("%26%2352%3B",
// "\u0026#52;", "%5Cu0034", "\\u0034", "%2534", "&amp;#52;") is still a
// digit.
const maxDepth = 3

// charAt decodes one character at p through up to depth layers of escapes;
// at depth 0 it is the raw byte (escape syntax is ASCII). It returns -1 and
// width 0 at the end of b.
func charAt(b []byte, p, depth int) (rune, int, Encoding) {
	if p >= len(b) {
		return -1, 0, 0
	}
	switch b[p] {
	case '%', '\\', '&':
		// A character of an escape at this depth may itself be written
		// with fewer layers.
		for d := depth; d > 0; d-- {
			if r, w, e := escapeAt(b, p, d); w > 0 {
				return r, w, e
			}
		}
	}
	return rune(b[p]), 1, 0
}

// hexChar reads one hex digit at q through depth layers.
func hexChar(b []byte, q, depth int) (byte, int) {
	r, w, _ := charAt(b, q, depth)
	if r < 0 || r >= 0x80 {
		return 0, 0
	}
	v, ok := unhex(byte(r))
	if !ok {
		return 0, 0
	}
	return v, w
}

// hexN reads n hex digits at q through depth layers.
func hexN(b []byte, q, n, depth int) (rune, int) {
	var v rune
	w := 0
	for range n {
		h, hw := hexChar(b, q+w, depth)
		if hw == 0 {
			return 0, 0
		}
		v = v<<4 | rune(h)
		w += hw
	}
	return v, w
}

// escapeAt decodes one escape at p whose own characters (introducer, hex
// digits, names) are read through depth-1 layers: "%XX" (with the further
// units of a UTF-8 sequence), "\uXXXX" (with a surrogate pair), "\xNN"
// (with UTF-8 units), the JSON short escapes, "&#N;", "&#xN;" and the named
// references of namedEntities. It returns the character, the escape's width
// and its encoding, or width 0.
func escapeAt(b []byte, p, depth int) (rune, int, Encoding) {
	c, w, e := charAt(b, p, depth-1)
	q := p + w
	switch c {
	case '%':
		x, hw := hexN(b, q, 2, depth-1)
		if hw == 0 {
			// "%u0034": the legacy JavaScript escape().
			if u, uw, _ := charAt(b, q, depth-1); u == 'u' || u == 'U' {
				if v, hw := hexN(b, q+uw, 4, depth-1); hw > 0 {
					return v, q + uw + hw - p, e | EncPercent
				}
			}
			return 0, 0, 0
		}
		return utf8Units(b, p, q+hw-p, byte(x), '%', depth, e|EncPercent)
	case '\\':
		n, nw, ne := charAt(b, q, depth-1)
		if nw == 0 {
			return 0, 0, 0
		}
		e |= ne
		q += nw
		switch n {
		case 'u':
			v, hw := hexN(b, q, 4, depth-1)
			if hw == 0 {
				return braceEscape(b, p, q, depth, e)
			}
			w := q + hw - p
			if v >= 0xD800 && v < 0xDC00 {
				if lo, w2, e2 := escapeAt(b, p+w, depth); w2 > 0 && lo >= 0xDC00 && lo < 0xE000 {
					return 0x10000 + (v-0xD800)<<10 + (lo - 0xDC00), w + w2, e | e2 | EncJSONEscape
				}
			}
			return v, w, e | EncJSONEscape
		case 'x':
			x, hw := hexN(b, q, 2, depth-1)
			if hw == 0 {
				return 0, 0, 0
			}
			return utf8Units(b, p, q+hw-p, byte(x), '\\', depth, e|EncHexEscape)
		case 'U':
			// "\U00000034": Python, C11.
			v, hw := hexN(b, q, 8, depth-1)
			if hw == 0 || v > unicode.MaxRune {
				return 0, 0, 0
			}
			return v, q + hw - p, e | EncJSONEscape
		case '0', '1', '2', '3':
			// "\064": an octal byte escape of exactly three digits (C,
			// bash $'...', PostgreSQL bytea). Shorter ones ("\0", "\12")
			// are left alone: a digit after them would be read wrongly.
			return octalEscape(b, p, q-nw, depth, e)
		}
		if r, ok := shortEscapes[n]; ok {
			return r, q - p, e | EncJSONEscape
		}
	case '&':
		n, nw, ne := charAt(b, q, depth-1)
		e |= ne | EncHTMLEntity
		q += nw
		if n == '#' {
			return numericRef(b, p, q, depth, e)
		}
		// A named reference: letters (then letters or digits), then ';'.
		// HTML5 also decodes the legacy names without their ';' ("&nbsp").
		if nw == 0 || n >= 0x80 || !isLetter(byte(n)) {
			return 0, 0, 0
		}
		var name [20]byte
		name[0] = byte(n)
		letters, qL := 1, q // the letters-only prefix, and where it ends
		for k := 1; k < len(name); k++ {
			r, rw, re := charAt(b, q, depth-1)
			if r == ';' {
				if v, ok := namedRef(string(name[:k])); ok {
					return v, q + rw - p, e | re
				}
				break
			}
			if rw == 0 || r >= 0x80 || !isLetter(byte(r)) && !(r >= '0' && r <= '9') {
				break
			}
			name[k] = byte(r)
			q += rw
			if letters == k && isLetter(byte(r)) {
				letters, qL = k+1, q
			}
		}
		if v, ok := legacyRefs[string(name[:letters])]; ok {
			return v, qL - p, e
		}
	}
	return 0, 0, 0
}

// braceEscape decodes the "{N}" of "\\u{34}" (JavaScript, Ruby, Rust,
// Swift, PHP) starting at q: one to six hex digits in braces.
func braceEscape(b []byte, p, q, depth int, e Encoding) (rune, int, Encoding) {
	r, w, _ := charAt(b, q, depth-1)
	if r != '{' {
		return 0, 0, 0
	}
	q += w
	var v rune
	for n := 0; n <= 6; n++ {
		r, w, _ := charAt(b, q, depth-1)
		if r == '}' && n > 0 {
			return v, q + w - p, e | EncJSONEscape
		}
		h, ok := byte(0), false
		if r >= 0 && r < 0x80 {
			h, ok = unhex(byte(r))
		}
		if !ok || n == 6 {
			return 0, 0, 0
		}
		v = v<<4 | rune(h)
		q += w
	}
	return 0, 0, 0
}

// octalEscape decodes the three octal digits of "\\064" starting at q.
func octalEscape(b []byte, p, q, depth int, e Encoding) (rune, int, Encoding) {
	var v rune
	for range 3 {
		r, w, _ := charAt(b, q, depth-1)
		if r < '0' || r > '7' {
			return 0, 0, 0
		}
		v = v<<3 | (r - '0')
		q += w
	}
	if v > 0xff {
		return 0, 0, 0
	}
	return v, q - p, e | EncOctalEscape
}

// numericRef decodes the digits and ';' of "&#N;" or "&#xN;" starting at q.
func numericRef(b []byte, p, q, depth int, e Encoding) (rune, int, Encoding) {
	r, w, _ := charAt(b, q, depth-1)
	hexa := r == 'x' || r == 'X'
	if hexa {
		q += w
	}
	var v rune
	n := 0
	for n < 8 {
		r, w, _ := charAt(b, q, depth-1)
		if r == ';' && n > 0 {
			return v, q + w - p, e
		}
		h, ok := byte(0), false
		if r >= 0 && r < 0x80 {
			h, ok = unhex(byte(r))
		}
		if !ok || (!hexa && h > 9) {
			if n > 0 {
				// "&#52&#49": HTML5 parsers decode a reference that
				// lacks its ';' too.
				return v, q - p, e
			}
			return 0, 0, 0
		}
		if hexa {
			v = v<<4 | rune(h)
		} else {
			v = v*10 + rune(h)
		}
		n++
		q += w
	}
	return 0, 0, 0
}

// utf8Units completes a UTF-8 sequence whose lead byte x was decoded from a
// unit of width w at p, reading the continuation bytes as further units of
// the same kind (intro '%' or '\\' for \xNN).
func utf8Units(b []byte, p, w int, x byte, intro rune, depth int, e Encoding) (rune, int, Encoding) {
	n := 1
	switch {
	case x < 0x80:
		return rune(x), w, e
	case x >= 0xF0:
		n = 4
	case x >= 0xE0:
		n = 3
	case x >= 0xC0:
		n = 2
	default:
		return utf8.RuneError, w, e
	}
	var buf [4]byte
	buf[0] = x
	q := p + w
	for i := 1; i < n; i++ {
		c, cw, _ := charAt(b, q, depth-1)
		if c != intro {
			return utf8.RuneError, w, e
		}
		if intro == '\\' {
			xr, xw, _ := charAt(b, q+cw, depth-1)
			if xr != 'x' {
				return utf8.RuneError, w, e
			}
			cw += xw
		}
		v, hw := hexN(b, q+cw, 2, depth-1)
		if hw == 0 {
			return utf8.RuneError, w, e
		}
		buf[i] = byte(v)
		q += cw + hw
	}
	r, size := utf8.DecodeRune(buf[:n])
	if size != n {
		return utf8.RuneError, w, e
	}
	return r, q - p, e
}

// shortEscapes are the JSON / C one-letter escapes.
var shortEscapes = map[rune]rune{'\\': '\\', '/': '/', '"': '"', '\'': '\'', 'n': '\n', 't': '\t', 'r': '\r', 'f': '\f', 'v': '\v', 'e': 0x1b}

// namedRef resolves the named character references that matter: those of
// separators, digits and escape syntax. A name in the wrong case ("&NBSP;":
// no entity, but a reader sees a gap) is looked up in lower case too.
func namedRef(name string) (rune, bool) {
	if r, ok := namedRefs[name]; ok {
		return r, true
	}
	var low [20]byte
	for i := 0; i < len(name) && i < len(low); i++ {
		low[i] = name[i] | 0x20
		if name[i] >= '0' && name[i] <= '9' {
			low[i] = name[i]
		}
	}
	r, ok := namedRefs[string(low[:len(name)])]
	return r, ok
}

// legacyRefs are the named references of separators and digits that HTML5
// decodes without their ';' ("4111&nbsp1111").
var legacyRefs = map[string]rune{
	"nbsp": 0xA0, "NBSP": 0xA0, "shy": 0xAD, "middot": 0xB7, "sup1": 0xB9, "sup2": 0xB2, "sup3": 0xB3,
	"amp": '&', "AMP": '&', "lt": '<', "LT": '<', "gt": '>', "GT": '>', "quot": '"', "QUOT": '"',
}

var namedRefs = map[string]rune{
	"nbsp": 0xA0, "NonBreakingSpace": 0xA0, "ensp": 0x2002, "emsp": 0x2003, "thinsp": 0x2009, "hairsp": 0x200A,
	"numsp": 0x2007, "puncsp": 0x2008, "shy": 0xAD, "ndash": 0x2013, "mdash": 0x2014, "minus": 0x2212,
	"hyphen": 0x2010, "dash": 0x2010, "zwj": 0x200D, "zwnj": 0x200C, "ZeroWidthSpace": 0x200B, "NoBreak": 0x2060,
	"lrm": 0x200E, "rlm": 0x200F, "NegativeThinSpace": 0x200B, "NegativeMediumSpace": 0x200B,
	"NegativeThickSpace": 0x200B, "ApplyFunction": 0x2061, "af": 0x2061, "InvisibleTimes": 0x2062, "it": 0x2062,
	"InvisibleComma": 0x2063, "ic": 0x2063, "emsp13": 0x2004, "emsp14": 0x2005, "ThinSpace": 0x2009,
	"VeryThinSpace": 0x200A, "MediumSpace": 0x205F, "middot": 0xB7, "centerdot": 0xB7, "CenterDot": 0xB7,
	"bull": 0x2022, "bullet": 0x2022, "boxh": 0x2500, "horbar": 0x2015, "comma": ',', "verbar": '|', "vert": '|',
	"sup1": 0xB9, "sup2": 0xB2, "sup3": 0xB3, "VerticalLine": '|', "Tab": '\t', "NewLine": '\n', "colon": ':', "sol": '/', "period": '.', "lowbar": '_', "plus": '+',
	"amp": '&', "AMP": '&', "num": '#', "percnt": '%', "bsol": '\\', "semi": ';',
	"quot": '"', "QUOT": '"', "apos": '\'', "lt": '<', "LT": '<', "gt": '>', "GT": '>', "equals": '=',
}

// decode decodes the escaped character at p (p holds '%', '\\' or '&'),
// looking through up to maxDepth layers when an escape yields another
// escape's introducer ("%25" is '%', "\u0026" is '&').
func decode(b []byte, p int) (rune, int, Encoding) {
	r, w, e := escapeAt(b, p, 1)
	if w == 0 {
		if b[p] == '\\' && p+1 < len(b) && (b[p+1] == '&' || b[p+1] == '%') {
			// A JSON escape whose letter is escaped again ("\&#34;": a
			// JSON string's quote, HTML-escaped).
			return escapeAt(b, p, 2)
		}
		return 0, 0, 0
	}
	for d := 2; d <= maxDepth && (r == '%' || r == '\\' || r == '&'); d++ {
		r2, w2, e2 := escapeAt(b, p, d)
		if w2 == 0 || w2 <= w {
			break
		}
		r, w, e = r2, w2, e2
	}
	return r, w, e
}

// digitAt decodes a decimal digit written at b[p] in any encoding the
// detector knows and returns its value, the width of its written form and
// how it was encoded; w == 0 when no digit starts at p.
func digitAt(b []byte, p int) (v byte, w int, e Encoding) {
	c := b[p]
	switch {
	case c-'0' < 10:
		return c - '0', 1, 0
	case c == '%' || c == '\\' || c == '&':
		r, w, e := decode(b, p)
		if w == 0 {
			return 0, 0, 0
		}
		if v, ok := ndValue(r); ok {
			if r >= 0x80 {
				e |= EncUnicodeDigits
			}
			return v, w, e
		}
	case ndLead[c]:
		r, size := utf8.DecodeRune(b[p:])
		if v, ok := ndValue(r); ok && !exponent(b, p, r) {
			return v, size, EncUnicodeDigits
		}
	case c == '=':
		if r, w := qpChar(b, p); w > 0 {
			if v, ok := ndValue(r); ok {
				return v, w, EncQuotedPrintable | EncUnicodeDigits
			}
		}
	}
	return 0, 0, 0
}

// qpChar decodes a non-ASCII character written as MIME quoted-printable
// units at b[p] ("=C2=A0", "=EF=BC=94": '=' and two upper-case hex digits
// per UTF-8 byte), or returns width 0. ASCII is left alone: encoders
// write digits and spaces as they are, and "=34" in "key=34..." is data.
func qpChar(b []byte, p int) (rune, int) {
	x, ok := qpUnit(b, p)
	if !ok || x < 0xC2 {
		return 0, 0
	}
	n := 2
	if x >= 0xF0 {
		n = 4
	} else if x >= 0xE0 {
		n = 3
	}
	var buf [4]byte
	buf[0] = x
	for i := 1; i < n; i++ {
		if buf[i], ok = qpUnit(b, p+3*i); !ok {
			return 0, 0
		}
	}
	r, size := utf8.DecodeRune(buf[:n])
	if size != n {
		return 0, 0
	}
	return r, 3 * n
}

// qpUnit decodes one quoted-printable unit "=XX" at b[p].
func qpUnit(b []byte, p int) (byte, bool) {
	if p+2 >= len(b) || b[p] != '=' || !upperHex(b[p+1]) || !upperHex(b[p+2]) {
		return 0, false
	}
	h, _ := unhex(b[p+1])
	l, _ := unhex(b[p+2])
	return h<<4 | l, true
}

func upperHex(c byte) bool { return c-'0' < 10 || c-'A' < 6 }

// qpMay reports whether a quoted-printable unit of a non-ASCII character
// may start at the '=' at b[p] ("=C2", "=E", or the input ends): a soft
// line break or such a unit can be part of a number, so it is no split
// point (see SplitPoint).
func qpMay(b []byte, p int) bool {
	if p+1 >= len(b) {
		return true
	}
	switch c := b[p+1]; {
	case c == '\r' || c == '\n':
		return true
	case c >= '8' && c <= '9' || c-'A' < 6:
		return p+2 >= len(b) || upperHex(b[p+2])
	}
	return false
}

// Gap kinds: what a separator unit between two digits is.
const (
	gapNone      = iota
	gapStd       // one ASCII space, dash, dot or '+' (URL space): the classic printings
	gapOther     // any other visible separator
	gapInvisible // zero-width characters and soft hyphens: the digits look contiguous
	gapQuote     // a quote: part of a gap only beside a visible separator ("4111","1111")
)

// sepRune classifies a decoded character as a separator.
func sepRune(r rune) int {
	switch r {
	case ' ', '-', '.', '+':
		return gapStd
	case '"', '\'':
		return gapQuote
	case '\t', '\r', '\n', '\v', '\f', ':', '/', '_', ',', ';', '|', 0, 0xA0, 0xB7, 0x1680, 0x202F, 0x205F, 0x3000, 0x066B,
		0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, 0x2212, 0x2043, 0xFE58, 0xFE63, 0xFF0D, 0xFF0E, 0xFF1A, 0xFF0F,
		0x85, 0x2028, 0x2029, // NEL, line and paragraph separators
		0xFF0C, 0xFF1B, 0xFF5C, 0xFF3F, 0x3001, 0x3002, 0xFF61, 0xFF64, 0x30FB, 0xFF65, // East Asian commas, stops, dots
		0x060C, 0x061B, 0x066C, // Arabic comma, semicolon, thousands separator
		0x2022, 0x2027, 0x2219, 0x22C5, 0x2E31, // bullets, hyphenation point, dot operators, word separator
		0x301C, 0x3030, 0xFF5E, 0x2053, 0x2500, 0x2501: // wave dashes, fullwidth tilde, swung dash, box-drawing lines
		return gapOther
	case 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD, 0x180E,
		0x200E, 0x200F, 0x061C, // bidi marks (LRM, RLM, ALM): text copied from right-to-left interfaces
		0x2061, 0x2062, 0x2063, 0x2064, // invisible operators
		0x034F,                         // combining grapheme joiner
		0x115F, 0x1160, 0x3164, 0xFFA0: // Hangul fillers
		return gapInvisible
	}
	switch {
	case r >= 0x2000 && r <= 0x200A:
		return gapOther
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, // bidi embeddings, overrides, isolates
		r >= 0xFE00 && r <= 0xFE0F, r >= 0xE0100 && r <= 0xE01EF, // variation selectors
		r >= 0xE0000 && r <= 0xE007F: // tag characters
		return gapInvisible
	}
	return gapNone
}

// gapAt decodes one separator unit at b[p] in any encoding and returns its
// width, kind and encoding; w == 0 when none starts at p.
func gapAt(b []byte, p int) (w, kind int, e Encoding) {
	c := b[p]
	switch {
	case c == ' ' || c == '-' || c == '.' || c == '+':
		return 1, gapStd, 0
	case asciiSep[c]: // every other plain ASCII separator (one table, shared with the block filter)
		return 1, gapOther, EncSeparators
	case c == '"' || c == '\'':
		return 1, gapQuote, EncMarkup
	case c == '<':
		if w := tagAt(b, p); w > 0 {
			return w, gapOther, EncMarkup
		}
	case c == '=':
		if w := qpBreak(b, p); w > 0 {
			return w, gapInvisible, EncQuotedPrintable
		}
		if r, w := qpChar(b, p); w > 0 {
			if k := sepRune(r); k != gapNone {
				return w, k, EncQuotedPrintable | sepEnc(k)
			}
		}
	case c == 0x1b:
		if w := csiAt(b, p); w > 0 {
			return w, gapInvisible, EncInvisible
		}
	case c == '%' || c == '\\' || c == '&':
		r, w, e := decode(b, p)
		if w == 0 {
			return 0, gapNone, 0
		}
		switch r {
		case '<':
			if tw := tagAt(b, p); tw > 0 {
				return tw, gapOther, e | EncMarkup
			}
		case '=':
			if qw := qpBreak(b, p); qw > 0 {
				return qw, gapInvisible, e | EncQuotedPrintable
			}
		case 0x1b:
			if cw := csiAt(b, p); cw > 0 {
				return cw, gapInvisible, e | EncInvisible
			}
		}
		if k := sepRune(r); k != gapNone {
			if k == gapStd && c != '%' {
				k = gapOther // an escaped space in JSON or HTML is unusual
			}
			return w, k, e | sepEnc(k)
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
	case gapQuote:
		return EncMarkup
	case gapOther:
		return EncSeparators
	case gapInvisible:
		return EncInvisible
	}
	return 0
}

// maxTag is the longest HTML or XML tag seen as a gap ("<span class=x>").
const maxTag = 64

// tagAt returns the width of an HTML or XML tag at b[p] ('<', a letter,
// '/' or '!', then up to maxTag characters without '<', a line break or
// a digit, then '>'; each character plain or escaped: "\u003cb\u003e",
// "&lt;b&gt;", "%3Cb%3E"), or 0. A tag with digits is not a gap: its
// attributes may hold a number of their own (<card number="4111...">).
func tagAt(b []byte, p int) int {
	r, w, _ := charAt(b, p, maxDepth)
	if r != '<' {
		return 0
	}
	q := p + w
	if r, w, _ = charAt(b, q, maxDepth); w == 0 || !(r < 0x80 && isLetter(byte(r)) || r == '/' || r == '!') {
		return 0
	}
	for n := 0; n < maxTag; n++ {
		r, w, _ := charAt(b, q, maxDepth)
		switch {
		case w == 0 || r == '<' || r == '\n' || (r >= '0' && r <= '9'):
			return 0
		case r == '>':
			return q + w - p
		}
		q += w
	}
	return 0
}

// qpBreak returns the width of a MIME quoted-printable soft line break at
// b[p] ("=\r\n" or "=\n", plain or escaped), or 0.
func qpBreak(b []byte, p int) int {
	r, w, _ := charAt(b, p, maxDepth)
	if r != '=' {
		return 0
	}
	q := p + w
	r, w, _ = charAt(b, q, maxDepth)
	if r == '\r' {
		q += w
		r, w, _ = charAt(b, q, maxDepth)
	}
	if r != '\n' {
		return 0
	}
	return q + w - p
}

// maxCSI is the most parameter characters of a terminal escape sequence
// seen as a gap ("\x1b[38;2;255;100;0m" has 14).
const maxCSI = 20

// csiAt returns the width of a terminal control sequence at b[p] (ESC '['
// parameters of digits and ';', up to maxCSI, then a final letter: the
// colors and styles of "grep --color", ls and colored logs), each
// character plain or escaped ("\u001b[1m", "\x1b[0m", "\033[K", "\e[m"),
// or 0. It renders as nothing: an invisible gap.
func csiAt(b []byte, p int) int {
	r, w, _ := charAt(b, p, maxDepth)
	if r != 0x1b {
		return 0
	}
	q := p + w
	if r, w, _ = charAt(b, q, maxDepth); r != '[' {
		return 0
	}
	q += w
	for n := 0; n <= maxCSI; n++ {
		r, w, _ := charAt(b, q, maxDepth)
		switch {
		case r >= '0' && r <= '9' || r == ';':
			q += w
		case r >= 0 && r < 0x80 && isLetter(byte(r)):
			return q + w - p
		default:
			return 0
		}
	}
	return 0
}

// csiOpen reports whether b[k-1] is the '[' of a terminal escape
// sequence (after an ESC, plain or escaped): the sequence can be a gap
// inside a number (csiAt), so it is no split point (see SplitPoint).
func csiOpen(b []byte, k int) bool {
	if k < 2 || b[k-1] != '[' {
		return false
	}
	for p := k - 2; p >= 0 && k-1-p <= 24; p-- {
		if r, w, _ := charAt(b, p, maxDepth); r == 0x1b && p+w == k-1 {
			return true
		}
	}
	return false
}

// markupStart marks the bytes that can start a markup gap (quote, tag,
// quoted-printable soft line break): the block filter keeps a stretch of
// digits they follow, and the scanner looks (markupGap) whether a digit
// follows the gap.
var markupStart = func() (t [256]bool) {
	t['"'], t['\''], t['<'], t['='] = true, true, true, true
	return t
}()

// markupGap reports whether a gap of separator units that holds markup
// starts at g and leads to a digit (see gapAt; a gap of quotes only does
// not count), or a quoted-printable digit starts at g.
func markupGap(b []byte, g int) bool {
	if b[g] == '=' {
		if _, w, _ := digitAt(b, g); w > 0 {
			return true // a quoted-printable digit ("=EF=BC=94"): the run goes on
		}
	}
	q, seen := g, false
	for units := 0; q < len(b) && units < maxGapUnits; units++ {
		w, k, _ := gapAt(b, q)
		if w == 0 {
			break
		}
		seen = seen || k != gapQuote
		q += w
	}
	if q >= len(b) || !seen {
		return false
	}
	_, w, _ := digitAt(b, q)
	return w > 0
}

// skipWidth returns how far to move past a byte at p that starts neither a
// digit nor a run: a whole escape or character reference (so the digits
// inside "%20", "\u00e9" or "&#1234;" are never read as data), a whole
// UTF-8 character, or one byte.
func skipWidth(b []byte, p int) int {
	switch c := b[p]; {
	case c == '%' || c == '\\' || c == '&':
		if _, w, _ := decode(b, p); w > 0 {
			return w
		}
		if c == '\\' && p+1 < len(b) && isLetter(b[p+1]) {
			return 2 // "\a": a letter escape; a digit after '\\' is data
		}
	case c >= 0xC0:
		_, size := utf8.DecodeRune(b[p:])
		return size
	}
	return 1
}

// escDigits returns where the ASCII digits that end the escape b[p:p+w]
// start, when a run could go on right after the escape (see skipAt), or 0.
func escDigits(b []byte, p, w int) int {
	e := p + w
	if e >= len(b) || !cont[b[e]] || (b[p] != '%' && b[p] != '\\' && b[p] != '&') {
		return 0
	}
	ds := e
	for ds > p && isDigit(b[ds-1]) {
		ds--
	}
	if ds == e {
		return 0
	}
	return ds
}

// skipAt returns where the scan goes on after a byte at p that starts
// neither a digit nor a run (see skipWidth), and alt: where to scan again
// if the run that starts at next holds no PAN, or 0. An escape whose
// written form ends in digits may be no escape at all, its digits the
// number's first ones: track 1 of a magnetic stripe ("%B4111...^NAME^...":
// "%B4" is no valid UTF-8 escape), a percent sign right before a number
// ("50%4111...": "%41" is 'A'), a Windows path ("C:\x\3714....pdf": "\371"
// looks octal). Then next is where those digits start (read as data) and
// alt the escape's end (the escape read as one), so both readings are
// scanned: a real escape right before a number ("caf\u00e94111...") still
// counts as one. (An escape that decodes to a digit or a separator after
// a digit starts a run itself; next tries its digits as data the same
// way, after it: see escDigits.)
func skipAt(b []byte, p int) (next, alt int) {
	w := skipWidth(b, p)
	if ds := escDigits(b, p, w); ds > 0 {
		if _, dw, _ := decode(b, p); dw == w {
			return ds, p + w
		}
	}
	return p + w, 0
}

// afterRun returns where the scan goes on after the current run: its end,
// or, when the run's start was an escape that ends in digits (see skipAt),
// where its other reading starts.
func (s *scanner) afterRun() int {
	if a := s.alt; a > 0 {
		s.alt = 0
		return a
	}
	return s.runEnd
}
