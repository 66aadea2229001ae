// Package pantest generates synthetic, Luhn-valid PANs for tests and
// benchmarks of every network the detector knows, prints them in the formats
// the detector supports, and redacts digits for safe test output.
//
// The PANs are random numbers inside public IIN ranges; they are not real
// cards, but treat them like real ones anyway: never print them in full.
package pantest

import (
	"math/rand/v2"
	"strings"
	"unicode"

	"github.com/pcistream/pcistream/internal/pan"
)

// Style is how a PAN is printed.
type Style int

// Styles the detector supports.
const (
	Contiguous Style = iota // 4111111111111111
	Spaces                  // 4111 1111 1111 1111
	Dashes                  // 4111-1111-1111-1111
	Dots                    // 4111.1111.1111.1111
	Plus                    // 4111+1111+1111+1111 (form-encoded URL)
	PctSpaces               // 4111%201111%201111%201111 (percent-encoded URL)
	PctDashes               // 4111%2D1111%2D1111%2D1111
	numStyles
)

// Styles returns every Style.
func Styles() []Style {
	out := make([]Style, numStyles)
	for i := range out {
		out[i] = Style(i)
	}
	return out
}

// String names the style.
func (s Style) String() string {
	return [...]string{"contiguous", "spaces", "dashes", "dots", "plus", "pct-spaces", "pct-dashes"}[s]
}

func (s Style) sep() string {
	return [...]string{"", " ", "-", ".", "+", "%20", "%2D"}[s]
}

// Lengths returns the PAN lengths valid for network n.
func Lengths(n pan.Network) []int {
	seen := map[int]bool{}
	var out []int
	for _, r := range pan.IINRanges() {
		if r.Network != n {
			continue
		}
		for _, l := range r.Lengths {
			if !seen[l] {
				seen[l] = true
				out = append(out, l)
			}
		}
	}
	// sort (tiny)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// Generate returns a Luhn-valid PAN of network n and the given length that
// pan.Identify attributes to n. It panics if n has no range of that length.
func Generate(r *rand.Rand, n pan.Network, length int) []byte {
	var rs []pan.IINRange
	for _, rg := range pan.IINRanges() {
		if rg.Network != n {
			continue
		}
		for _, l := range rg.Lengths {
			if l == length {
				rs = append(rs, rg)
			}
		}
	}
	if len(rs) == 0 {
		panic("pantest: no IIN range for " + n.String() + " of that length")
	}
	d := make([]byte, length)
	for try := 0; ; try++ {
		if try > 10000 {
			panic("pantest: cannot generate " + n.String())
		}
		rg := rs[r.IntN(len(rs))]
		p := rg.Lo + uint32(r.IntN(int(rg.Hi-rg.Lo+1)))
		for i := 5; i >= 0; i-- {
			d[i] = byte('0' + p%10)
			p /= 10
		}
		for i := 6; i < length-1; i++ {
			d[i] = byte('0' + r.IntN(10))
		}
		d[length-1] = CheckDigit(d[:length-1])
		if got, ok := pan.Identify(d); ok && got == n {
			return d
		}
	}
}

// CheckDigit returns the Luhn check digit (ASCII) for payload.
func CheckDigit(payload []byte) byte {
	sum := 0
	dbl := true
	for i := len(payload) - 1; i >= 0; i-- {
		v := int(payload[i] - '0')
		if dbl {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		dbl = !dbl
	}
	return byte('0' + (10-sum%10)%10)
}

// Groups returns the usual printed grouping of a PAN of n digits: 4-6-5 and
// 4-6-4 for 15 and 14 digits (Amex, Diners), groups of four otherwise with a
// shorter last group.
func Groups(n int) []int {
	switch n {
	case 15:
		return []int{4, 6, 5}
	case 14:
		return []int{4, 6, 4}
	}
	var g []int
	for n > 0 {
		l := min(4, n)
		g = append(g, l)
		n -= l
	}
	return g
}

// Format prints digits in style s.
func Format(digits []byte, s Style) string {
	if s == Contiguous {
		return string(digits)
	}
	var b strings.Builder
	i := 0
	for gi, l := range Groups(len(digits)) {
		if gi > 0 {
			b.WriteString(s.sep())
		}
		b.Write(digits[i : i+l])
		i += l
	}
	return b.String()
}

// Context is where a PAN appears.
type Context int

// Contexts the detector must handle.
const (
	PlainText Context = iota
	JSONString
	JSONNumber // contiguous style only
	JSONEscaped
	URLQuery
	XMLElement
	XMLAttribute
	LogKV
	CSV
	numContexts
)

// Contexts returns every Context.
func Contexts() []Context {
	out := make([]Context, numContexts)
	for i := range out {
		out[i] = Context(i)
	}
	return out
}

// String names the context.
func (c Context) String() string {
	return [...]string{"plain", "json-string", "json-number", "json-escaped", "url-query", "xml-element", "xml-attribute", "log-kv", "csv"}[c]
}

// Fits reports whether a PAN printed in style s can appear in context c.
func (c Context) Fits(s Style) bool {
	switch c {
	case JSONNumber:
		return s == Contiguous
	case URLQuery:
		return true
	}
	return s != Plus && s != PctSpaces && s != PctDashes
}

// Embed puts the printed PAN p in context c and returns the text and the
// offset of p in it.
func Embed(p string, c Context) (string, int) {
	var pre, post string
	switch c {
	case PlainText:
		pre, post = "payment declined for card ", " at merchant 4021, retrying in 30s"
	case JSONString:
		pre, post = `{"ts":"2026-11-23T11:28:50.123Z","card":"`, `","amount":12.5,"currency":"EUR"}`
	case JSONNumber:
		pre, post = `{"order":1832,"card":`, `,"amount":1250}`
	case JSONEscaped:
		pre, post = `{"msg":"charge failed\ncard: `, `\n(see above)"}`
	case URLQuery:
		pre, post = "GET /v1/charge?merchant=42&card=", "&exp=12%2F27 HTTP/1.1"
	case XMLElement:
		pre, post = "<payment><card><number>", "</number><exp>12/27</exp></card></payment>"
	case XMLAttribute:
		pre, post = `<card number="`, `" exp="12/27"/>`
	case LogKV:
		pre, post = "level=info msg=\"charge\" card=", " latency_ms=31"
	case CSV:
		pre, post = "2026-11-23,42,", ",EUR,12.50"
	}
	return pre + p + post, len(pre)
}

// Redact replaces every ASCII digit of s except the last four with '#',
// and every other numeric character (other scripts' digits, superscripts,
// circled digits) too, so a test can print text that may hold a PAN (even
// one the detector missed, in any digits).
func Redact(s string) string {
	total := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' {
			total++
		}
	}
	var b strings.Builder
	idx := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			if idx < total-4 {
				r = '#'
			}
			idx++
		case r >= 0x80 && unicode.IsNumber(r):
			r = '#'
		}
		b.WriteRune(r)
	}
	return b.String()
}
