package pan

import "fmt"

// Policy says what a mask or a truncation keeps of a PAN. Every policy
// shows at most what Visible allows, so a configuration can show less than
// the default, never more.
type Policy uint8

// Masking policies. Masked digits become '*' (written in the digit's own
// encoding: "\u002a", "%2A", "&#42;"); separators and length are kept so
// downstream parsers keep working and JSON, URLs and XML stay valid.
const (
	// First6Last4 keeps the BIN (first six digits) and the last four, the
	// most PCI DSS allows to be displayed, but only where at least six
	// digits stay hidden (PANs of 16 to 19 digits); shorter PANs keep the
	// last four only (see Visible).
	First6Last4 Policy = iota
	// Last4 keeps only the last four digits.
	Last4
	// Full masks every digit.
	Full
)

// MinHidden is the least number of digits any policy hides: with the BIN,
// the last four and a Luhn check digit shown, six hidden digits still leave
// 100,000 candidates, where a 13-digit PAN with the BIN shown would leave
// 100.
const MinHidden = 6

// Visible returns how many leading and trailing digits of a PAN of length
// digits policy p may show: First6Last4 gives (6, 4) for 16 to 19 digits
// and (0, 4) for shorter PANs; Last4 gives (0, 4); Full gives (0, 0). It
// never shows more than length-MinHidden digits (lengths under 10 show
// nothing). Everything that truncates or masks a PAN (masks, log lines,
// dead letters, scan output, the tokenized event's BIN and last four)
// calls it, so the rule lives in one place.
func Visible(length int, p Policy) (first, last int) {
	switch p {
	case First6Last4:
		first, last = 6, 4
	case Last4:
		last = 4
	default:
		return 0, 0
	}
	if length-first-last < MinHidden {
		first = 0
	}
	if length-last < MinHidden {
		last = 0
	}
	return first, last
}

// Reveal returns the parts of the PAN digits (ASCII) that policy p may show:
// the leading digits (the BIN, or "") and the trailing ones (the last four,
// or ""). Use it to fill BIN / last-four fields of tokenized events.
func Reveal(digits []byte, p Policy) (bin, lastDigits string) {
	f, l := Visible(len(digits), p)
	return string(digits[:f]), string(digits[len(digits)-l:])
}

// ParsePolicy parses "first6last4", "last4" or "full".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "first6last4":
		return First6Last4, nil
	case "last4":
		return Last4, nil
	case "full":
		return Full, nil
	}
	return 0, fmt.Errorf("unknown masking policy %q: use first6last4, last4 or full", s)
}

// String returns the policy name as ParsePolicy accepts it.
func (p Policy) String() string {
	switch p {
	case First6Last4:
		return "first6last4"
	case Last4:
		return "last4"
	case Full:
		return "full"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// Set implements pflag.Value (and flag.Value) so a Policy can be a flag.
func (p *Policy) Set(s string) error {
	v, err := ParsePolicy(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Type implements pflag.Value.
func (p *Policy) Type() string { return "policy" }

// Mask returns b with every PAN masked under p, appended to dst, and the
// number of PANs masked. Each masked digit is replaced in the form it was
// written (a plain digit by '*', "\u0034" by "\u002a", "%34" by "%2A",
// "&#52;" by "&#42;", a non-ASCII digit by as many '*' as it had bytes), so
// the output has the input's length and stays valid JSON, URL or XML;
// separators are kept. If n == 0 the returned slice equals
// append(dst, b...). Masking is idempotent and leaves no PAN the detector
// would report: where other digits of the same run stand next to a PAN, it
// keeps none of its digits (they could otherwise form a new PAN with their
// neighbours).
func (d *Detector) Mask(dst, b []byte, p Policy) (out []byte, n int) {
	if cap(dst)-len(dst) < len(b) {
		grown := make([]byte, len(dst), len(dst)+len(b))
		copy(grown, dst)
		dst = grown
	}
	// The scanner copies the input to dst as it goes, a chunk at a time
	// while the chunk is still in cache; each PAN is then overwritten in
	// place (a masked span has the length of the span as written).
	out = dst[:len(dst)+len(b)]
	s := scanner{d: d, b: b, bs: noBlock, out: out[len(dst):], copying: true}
	var m Match
	for s.next(&m) {
		s.flushTo(m.End)
		appendMasked(s.out[:m.Start], b, &m, p)
		n++
	}
	s.flushTo(len(b))
	return out, n
}

// MaskString is Mask for strings. It returns s itself (no allocation) when s
// holds no PAN.
func (d *Detector) MaskString(str string, p Policy) (string, int) {
	b := stringBytes(str)
	if !d.Contains(b) {
		return str, 0
	}
	out, n := d.Mask(make([]byte, 0, len(str)), b, p)
	return string(out), n
}

// appendMasked appends the match m of b, masked under p, to dst.
func appendMasked(dst, b []byte, m *Match, p Policy) []byte {
	head, tail := Visible(m.Digits, p)
	if m.adj&adjBefore != 0 {
		head = 0
	}
	if m.adj&adjAfter != 0 {
		tail = 0
	}
	if m.Encoding&(EncHexASCII|EncBase64) != 0 {
		return appendMaskedNested(dst, b, m, p)
	}
	return appendMaskedFlat(dst, b, m, head, tail)
}

// appendMaskedFlat appends the match m of b (not inside hex or base64)
// with its digits but the first head and the last tail masked. (It is
// apart from appendMasked so appendMaskedNested, which calls it, is not
// recursive: b would then escape.)
func appendMaskedFlat(dst, b []byte, m *Match, head, tail int) []byte {
	if m.Encoding&^(EncGlued|EncSeparators) == 0 {
		// Plain ASCII digits: no decoding needed.
		idx := 0
		for _, c := range b[m.Start:m.End] {
			if isDigit(c) {
				if idx >= head && idx < m.Digits-tail {
					c = '*'
				}
				idx++
			}
			dst = append(dst, c)
		}
		return dst
	}
	idx := 0
	for q := m.Start; q < m.End; {
		if _, w, _ := digitAt(b, q); w > 0 {
			if idx >= head && idx < m.Digits-tail {
				dst = appendStar(dst, b[q:q+w])
			} else {
				dst = append(dst, b[q:q+w]...)
			}
			idx++
			q += w
			continue
		}
		w, _, _ := gapAt(b, q)
		if w == 0 {
			w = 1 // cannot happen: a match holds digits and gaps only
		}
		dst = append(dst, b[q:q+w]...)
		q += w
	}
	return dst
}

// appendStar appends a '*' written the way the digit tok was written, with
// the same length: "%34" gives "%2A", "\u0034" "\u002a", "\x34" "\x2a",
// "&#52;" "&#42;", "&#x34;" "&#x2a;" (each unit of a multi-unit escape
// becomes one '*'). An escape nested in another ("\u0026#52;") or a
// non-ASCII digit becomes as many plain '*' as it had bytes, which is valid
// in JSON strings, URLs and XML alike.
func appendStar(dst, tok []byte) []byte {
	n0 := len(dst)
	if tok[0] == '%' || tok[0] == '\\' || tok[0] == '&' {
		dst = appendStarUnits(dst, tok)
		if len(dst)-n0 == len(tok) && allStars(dst[n0:]) {
			return dst
		}
		dst = dst[:n0]
	}
	for range tok {
		dst = append(dst, '*')
	}
	return dst
}

// allStars reports whether e decodes to '*' characters only.
func allStars(e []byte) bool {
	for q := 0; q < len(e); {
		r, w, _ := charAt(e, q, 1)
		if r != '*' || w == 0 {
			return false
		}
		q += w
	}
	return true
}

// appendStarUnits rewrites the hex, decimal or octal payload of each
// escape unit of tok as the code of '*', zero-padded to the same width
// ("%u0034" gives "%u002A", "\\u{34}" "\\u{2a}", "\\064" "\\052", "&#52"
// "&#42"). The result is checked by the caller.
func appendStarUnits(dst, tok []byte) []byte {
	for k := 0; k < len(tok); {
		// Copy the unit's prefix up to its payload.
		e := k
		for e < len(tok) && (tok[e] == '%' || tok[e] == '\\' || tok[e] == '&' || tok[e] == '#' || tok[e] == '{' ||
			tok[e] == 'u' || tok[e] == 'U' || tok[e] == 'x' || tok[e] == 'X' || (tok[e] == '2' && e+1 < len(tok) && tok[e+1] == '5' && e > k && tok[e-1] == '%') ||
			(e > k && tok[e-1] == '2' && tok[e] == '5' && e > k+1 && tok[e-2] == '%') || string(tok[e:min(e+4, len(tok))]) == "amp;") {
			if string(tok[e:min(e+4, len(tok))]) == "amp;" {
				e += 4
				continue
			}
			e++
		}
		if e == k || e >= len(tok) {
			return dst // not a simple unit: the caller falls back
		}
		dst = append(dst, tok[k:e]...)
		// The payload: hex, decimal or octal digits, then ';' or '}'.
		width, val := 2, "2a"
		switch last := tok[e-1]; {
		case tok[k] == '&' && last == '#':
			width, val = 8, "42"
		case tok[k] == '&':
			width = 8
		case last == '\\':
			width, val = 3, "52"
		case last == '{':
			width = 6
		case last == 'U':
			width = 8
		case last == 'u':
			width = 4
		}
		if tok[k] == '%' {
			val = "2A"
		}
		f := e
		for f < len(tok) && isHex(tok[f]) && f-e < width {
			f++
		}
		if f-e < 2 {
			return dst
		}
		for z := f - e; z > 2; z-- {
			dst = append(dst, '0')
		}
		dst = append(dst, val...)
		k = f
		if k < len(tok) && (tok[k] == ';' || tok[k] == '}') {
			dst = append(dst, tok[k])
			k++
		}
	}
	return dst
}
