package pan_test

import (
	"fmt"
	"html"
	"strings"
	"testing"
	"unicode"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/pan/pantest"
)

// Recall tests for the decoder (decode.go): escapes that end in digits,
// invisible and unusual separators, terminal escape sequences and
// quoted-printable. Each case is built for several networks and lengths;
// output names cases and redacts texts: they hold card numbers.

var recallBrands = []brand{
	{pan.Visa, 16}, {pan.Visa, 13}, {pan.Mastercard, 16}, {pan.Amex, 15}, {pan.Discover, 16},
	{pan.JCB, 16}, {pan.Diners, 14}, {pan.UnionPay, 19}, {pan.Mir, 16}, {pan.Maestro, 12},
}

// recallPAN returns a PAN of brand b; Mastercard alternates between the
// 51-55 and the 2221-2720 series (seed parity), so both are covered.
func recallPAN(seed uint64, b brand) string {
	for k := uint64(0); ; k++ {
		d := string(pantest.Generate(newRand(seed*1000+k), b.n, b.l))
		if b.n != pan.Mastercard || (d[0] == '2') == (seed%2 == 0) {
			return d
		}
	}
}

// readable reports whether pan can still be read in text: through the
// encodings pantest.Leaks decodes, as the raw digits (an escape's own
// digits may be the number's: "%B4111..."), with terminal escape sequences
// and quoted-printable decoded, and with superscript, subscript and
// circled digits read as digits.
func readable(text, p string) bool {
	if pantest.Leaks(text, p) {
		return true
	}
	views := []string{text, stripCSI(text), qpDecode(text), otherDigits(text), pantest.Decode(qpDecode(text)),
		stripCSI(pantest.Decode(strings.ReplaceAll(text, `\e`, "\x1b"))), otherDigits(pantest.Decode(text)), html.UnescapeString(text)}
	for _, v := range views {
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if c := v[i]; c >= '0' && c <= '9' || c == '*' {
				b.WriteByte(c)
			}
		}
		if strings.Contains(b.String(), p) {
			return true
		}
	}
	return false
}

// stripCSI removes ESC '[' parameters final-letter sequences.
func stripCSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == ';') {
				j++
			}
			if j < len(s) && (s[j]|0x20) >= 'a' && (s[j]|0x20) <= 'z' {
				i = j
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// qpDecode decodes quoted-printable "=XX" escapes.
func qpDecode(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '=' && i+2 < len(s) {
			var v byte
			if _, err := fmt.Sscanf(s[i+1:i+3], "%02X", &v); err == nil {
				b = append(b, v)
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}

// otherDigits maps every numeric character with a digit value 0-9
// (superscripts, subscripts, circled digits, other scripts) to ASCII.
func otherDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 0x80 && unicode.IsNumber(r) {
			if v, ok := noDigit(r); ok {
				b.WriteByte('0' + v)
				continue
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}

func noDigit(r rune) (byte, bool) {
	switch {
	case r == 0x2070 || r == 0x2080 || r == 0x24EA || r == 0x24FF:
		return 0, true
	case r == 0xB9:
		return 1, true
	case r == 0xB2 || r == 0xB3:
		return byte(r-0xB2) + 2, true
	case r >= 0x2074 && r <= 0x2079:
		return byte(r-0x2074) + 4, true
	case r >= 0x2081 && r <= 0x2089:
		return byte(r - 0x2080), true
	case r >= 0x2460 && r <= 0x2468:
		return byte(r-0x2460) + 1, true
	case r >= 0x2776 && r <= 0x277E:
		return byte(r-0x2776) + 1, true
	case unicode.IsDigit(r):
		return 0, false
	}
	return 0, false
}

// recallCase is one text that holds PANs, the first of which is pan.
type recallCase struct {
	name string
	text string
	pan  string // the first PAN of the text
	pans int
	more []string // further PANs of the text, none readable after masking
}

// checkRecall: every case is found (the right number, the first one's last
// four) and masked under every policy, keeping its length, with nothing
// readable left; masking again finds nothing and changes nothing; the
// stream masker agrees with Mask.
func checkRecall(t *testing.T, cases []recallCase) {
	t.Helper()
	d := pan.New()
	for _, c := range cases {
		if !readable(c.text, c.pan) {
			t.Fatalf("%s: test text does not hold its PAN (%q)", c.name, pantest.Redact(c.text))
		}
		ms := d.FindString(nil, c.text)
		if len(ms) != c.pans {
			t.Errorf("%s: found %d PANs, want %d (%q)", c.name, len(ms), c.pans, pantest.Redact(c.text))
			continue
		}
		if string(ms[0].Last4[:]) != c.pan[len(c.pan)-4:] || ms[0].Digits != len(c.pan) {
			t.Errorf("%s: first match %d digits, last four %q", c.name, ms[0].Digits, ms[0].Last4[:])
		}
		maskChecks(t, d, c.name, c.text, c.pans, append([]string{c.pan}, c.more...), readable)
	}
}

// TestRecallEscapeDigits: an escape whose written form ends in digits that
// decodes to neither a digit nor a separator does not swallow the
// number's first digits: magnetic stripe track 1 ("%B" is the start
// sentinel and format code, "%B4" is no valid UTF-8 escape), a percent
// sign before the number ("50%4111..."), Windows paths whose backslash
// and first digits look like an octal escape ("\371..."); while a real
// escape right before a number ("\u00e9", "%C3%A9") still counts as one.
func TestRecallEscapeDigits(t *testing.T) {
	var cases []recallCase
	for i, b := range recallBrands {
		p := recallPAN(uint64(i), b)
		name := fmt.Sprintf("%v-%d", b.n, b.l)
		track1 := "%B" + p + "^DOE/JOHN A                ^2512101" + strings.Repeat("0", 12) + "000?"
		track2 := ";" + p + "=2512101" + strings.Repeat("0", 12) + "?"
		add := func(kind, text string) {
			cases = append(cases, recallCase{name: name + " " + kind, text: text, pan: p, pans: 1})
		}
		add("track1", track1)
		add("track1-in-log", "swipe: "+track1+" reader=3")
		add("track1-json", `{"track1":"`+track1+`"}`)
		add("track2", track2)
		cases = append(cases, recallCase{name: name + " track1+track2", text: track1 + track2, pan: p, pans: 2})
		add("pct-E", "%E"+p)
		add("pct-before", "discount 50%"+p)
		add("pct-before-grouped", "50%"+pantest.Group(p, " "))
		add("winpath", `C:\scans\`+p+".pdf")
		add("winpath-grouped", `C:\scans\`+pantest.Group(p, "-")+".pdf")
		add("backslash", `\`+p)
		add("json-e-acute", `caf\u00e9`+p)
		add("pct-e-acute", "caf%C3%A9"+p)
		add("html-e-acute", "caf&#233;"+p)
		add("pct-first-digit", fmt.Sprintf("%%%02X", p[0])+p[1:])
		add("json-first-digit", fmt.Sprintf(`\u%04x`, p[0])+p[1:])
		add("octal-first-digit", fmt.Sprintf(`\%03o`, p[0])+p[1:])
		// Long texts: the block filter's path, Mask copying blocks ahead.
		pad := strings.Repeat("lorem ipsum dolor sit amet ", 5)
		add("long-track1", pad+track1+pad)
		add("long-json-e-acute", pad+`caf\u00e9`+p+pad)
		add("long-winpath", pad+`C:\scans\`+p+".pdf"+pad)
		cases = append(cases, recallCase{name: name + " long-pct-before", text: pad + "50%" + p + pad + "50%" + pantest.Group(p, " "), pan: p, pans: 2})
	}
	checkRecall(t, cases)
}

// invisibles are format characters and fillers that render as nothing
// (bidi marks and isolates copied from right-to-left interfaces, invisible
// operators, the combining grapheme joiner, variation selectors, Hangul
// fillers, tag characters).
var invisibles = []rune{
	0x200E, 0x200F, 0x061C, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069,
	0x2061, 0x2062, 0x2063, 0x2064, 0x034F, 0xFE00, 0xFE0F, 0xE0100, 0xE01EF, 0x3164, 0xFFA0, 0x115F, 0x1160,
	0xE0001, 0xE0020, 0xE007F,
}

// TestRecallInvisible: invisible characters between digits, plain or
// escaped, neither hide nor split a number.
func TestRecallInvisible(t *testing.T) {
	var cases []recallCase
	for i, b := range recallBrands {
		p := recallPAN(uint64(i)+20, b)
		for _, r := range invisibles {
			c := string(r)
			name := fmt.Sprintf("%v-%d U+%04X", b.n, b.l, r)
			add := func(kind, text string) {
				cases = append(cases, recallCase{name: name + " " + kind, text: text, pan: p, pans: 1})
			}
			add("groups", pantest.Group(p, c))
			add("groups-spaced", "card "+pantest.Group(p, " "+c)+" ok")
			add("every-digit", strings.Join(strings.Split(p, ""), c))
			add("rtl-wrapped", "\u200f"+c+p+c+"\u200e")
			if r < 0x10000 {
				add("json", `{"pan":"`+pantest.Group(p, fmt.Sprintf(`\u%04x`, r))+`"}`)
			}
			add("html-hex", pantest.Group(p, fmt.Sprintf("&#x%X;", r)))
			add("html-dec", pantest.Group(p, fmt.Sprintf("&#%d;", r)))
			var pct strings.Builder
			for _, x := range []byte(c) {
				fmt.Fprintf(&pct, "%%%02X", x)
			}
			add("percent", pantest.Group(p, pct.String()))
		}
		for _, ref := range []string{"&lrm;", "&rlm;", "&zwj;", "&zwnj;", "&InvisibleTimes;", "&it;", "&ic;", "&af;", "&NegativeThinSpace;"} {
			cases = append(cases, recallCase{name: fmt.Sprintf("%v-%d %s", b.n, b.l, ref[1:len(ref)-1]), text: pantest.Group(p, ref), pan: p, pans: 1})
		}
	}
	checkRecall(t, cases)
}

// moreSeps are visible separators: line and paragraph separators, NEL,
// vertical tab, form feed, East Asian and Arabic commas and dots, bullets,
// wave dashes and tildes, a box-drawing line, the middle dot.
var moreSeps = []rune{
	0x2028, 0x2029, 0x85, '\v', '\f', 0xFF0C, 0x3001, 0x30FB, 0x2022, 0x2027, 0x066C, 0x060C,
	0x301C, 0xFF5E, 0x2500, 0xB7, 0x066B,
}

// TestRecallSeparators: each separator, plain or escaped, groups a number
// as a space does.
func TestRecallSeparators(t *testing.T) {
	var cases []recallCase
	for i, b := range recallBrands {
		p := recallPAN(uint64(i)+40, b)
		for _, r := range moreSeps {
			c := string(r)
			name := fmt.Sprintf("%v-%d U+%04X", b.n, b.l, r)
			add := func(kind, text string) {
				cases = append(cases, recallCase{name: name + " " + kind, text: text, pan: p, pans: 1})
			}
			add("groups", pantest.Group(p, c))
			add("in-text", "card: "+pantest.Group(p, c)+" exp 12/27")
			add("spaced", pantest.Group(p, " "+c+" "))
			add("json", `{"pan":"`+pantest.Group(p, fmt.Sprintf(`\u%04x`, r))+`"}`)
			add("html", pantest.Group(p, fmt.Sprintf("&#x%X;", r)))
			var pct strings.Builder
			for _, x := range []byte(c) {
				fmt.Fprintf(&pct, "%%%02X", x)
			}
			add("percent", pantest.Group(p, pct.String()))
		}
		for _, ref := range []string{"&middot;", "&centerdot;", "&CenterDot;", "&bull;", "&bullet;", "&boxh;", "&comma;", "&verbar;", "&vert;", "&horbar;",
			"&nbsp", "&NBSP;", "&Nbsp;", "&emsp13;", "&MIDDOT;", "&middot", "&nbsp&nbsp"} {
			cases = append(cases, recallCase{name: fmt.Sprintf("%v-%d %s", b.n, b.l, ref[1:len(ref)-1]), text: pantest.Group(p, ref), pan: p, pans: 1})
		}
	}
	checkRecall(t, cases)
}

// TestRecallANSI: terminal escape sequences (colors, styles, erase) inside
// a number, plain or escaped as JSON logs and shell strings write them,
// are invisible gaps: "grep --color" highlighting part of a PAN.
func TestRecallANSI(t *testing.T) {
	var cases []recallCase
	for i, b := range recallBrands {
		p := recallPAN(uint64(i)+60, b)
		name := fmt.Sprintf("%v-%d", b.n, b.l)
		for _, esc := range []string{"\x1b", `\u001b`, `\x1b`, `\033`, `\e`, `\\u001b`} {
			add := func(kind, text string) {
				cases = append(cases, recallCase{name: fmt.Sprintf("%s %q %s", name, esc, kind), text: text, pan: p, pans: 1})
			}
			on, off := esc+"[1m", esc+"[0m"
			add("bold-middle", p[:4]+on+p[4:8]+off+p[8:])
			add("grep", p[:6]+esc+"[01;31m"+esc+"[K"+p[6:10]+esc+"[m"+esc+"[K"+p[10:])
			add("truecolor", p[:4]+esc+"[38;2;255;100;0m"+p[4:]+esc+"[0m")
			add("grouped", pantest.Group(p[:4], "")+" "+on+pantest.Group(p[4:], " ")+off)
			add("every-group", strings.Join(strings.Split(pantest.Group(p, " "), " "), on+" "+off))
			add("log-line", "\x1b[32mINFO\x1b[0m card="+p[:8]+on+p[8:]+off+" ok")
			// Long texts: the AVX2 block filter's prune.
			pad := strings.Repeat("ts=2026-11-30 lvl=info msg=ok ", 4)
			add("long-grep", pad+p[:6]+esc+"[01;31m"+esc+"[K"+p[6:10]+esc+"[m"+esc+"[K"+p[10:]+pad)
			add("long-bold", pad[:61]+p[:4]+on+p[4:8]+off+p[8:]+pad)
		}
	}
	checkRecall(t, cases)
}

// qp writes s in quoted-printable: every non-ASCII byte as "=XX".
func qp(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			fmt.Fprintf(&b, "=%02X", s[i])
		} else {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// fullwidth writes the digits of s in fullwidth form from index from on.
func fullwidth(s string, from int) string {
	var b strings.Builder
	for i, c := range []byte(s) {
		if i >= from && c >= '0' && c <= '9' {
			b.WriteRune(0xFF10 + rune(c-'0'))
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// TestRecallQuotedPrintable: quoted-printable mail bodies write non-ASCII
// separators and digits as "=XX" units ("=C2=A0" for NBSP, "=EF=BC=94"
// for a fullwidth 4): they are separators and digits. (Not covered: a
// number that starts with such digits; the block filter does not look at
// '=', and a run starts at a plain digit or an escape it flags.)
func TestRecallQuotedPrintable(t *testing.T) {
	var cases []recallCase
	for i, b := range recallBrands {
		p := recallPAN(uint64(i)+80, b)
		name := fmt.Sprintf("%v-%d", b.n, b.l)
		add := func(kind, text string) {
			cases = append(cases, recallCase{name: name + " " + kind, text: text, pan: p, pans: 1})
		}
		for _, sep := range []string{"\u00a0", "\u2009", "\u202f", "\u3000", "\u2013", "\u200b", "\u200e", "\uff0c", "\u30fb", "\u00b7"} {
			add(fmt.Sprintf("sep U+%04X", []rune(sep)[0]), "Card: "+qp(pantest.Group(p, sep))+"\r\n")
			add(fmt.Sprintf("sep U+%04X spaced", []rune(sep)[0]), qp(pantest.Group(p, " "+sep+" ")))
		}
		add("fullwidth-tail", "Karte: "+qp(fullwidth(p, 4))+"=\r\n")
		add("fullwidth-grouped-tail", qp(fullwidth(pantest.Group(p, " "), 5)))
		add("soft-break+nbsp", qp(pantest.Group(p[:8], "\u00a0"))+"=\r\n"+qp("\u00a0"+pantest.Group(p[8:], "\u00a0")))
	}
	checkRecall(t, cases)
}

// digitForms are the numeric characters with a digit value that are no
// decimal digits (Unicode No): superscripts, subscripts, circled digits;
// each entry maps 0-9 (0 where the form has no zero: never used for it).
var digitForms = map[string][10]rune{
	"superscript":      {0x2070, 0xB9, 0xB2, 0xB3, 0x2074, 0x2075, 0x2076, 0x2077, 0x2078, 0x2079},
	"subscript":        {0x2080, 0x2081, 0x2082, 0x2083, 0x2084, 0x2085, 0x2086, 0x2087, 0x2088, 0x2089},
	"circled":          {0x24EA, 0x2460, 0x2461, 0x2462, 0x2463, 0x2464, 0x2465, 0x2466, 0x2467, 0x2468},
	"negative-circled": {0x24FF, 0x2776, 0x2777, 0x2778, 0x2779, 0x277A, 0x277B, 0x277C, 0x277D, 0x277E},
}

// TestRecallDigitForms: superscript, subscript and circled digits are
// digits, alone or mixed with plain ones, plain or escaped.
func TestRecallDigitForms(t *testing.T) {
	var cases []recallCase
	for i, b := range recallBrands {
		p := recallPAN(uint64(i)+100, b)
		for form, ds := range digitForms {
			name := fmt.Sprintf("%v-%d %s", b.n, b.l, form)
			conv := func(s string, esc bool) string {
				var out strings.Builder
				for _, c := range []byte(s) {
					switch {
					case c < '0' || c > '9':
						out.WriteByte(c)
					case esc:
						fmt.Fprintf(&out, `\u%04x`, ds[c-'0'])
					default:
						out.WriteRune(ds[c-'0'])
					}
				}
				return out.String()
			}
			add := func(kind, text string) {
				cases = append(cases, recallCase{name: name + " " + kind, text: text, pan: p, pans: 1})
			}
			add("all", "card "+conv(p, false)+" ok")
			add("grouped", conv(pantest.Group(p, " "), false))
			if form == "circled" || form == "negative-circled" {
				add("tail", p[:6]+conv(p[6:], false))
			}
			add("json", `{"n":"`+conv(p, true)+`"}`)
		}
	}
	checkRecall(t, cases)
	// Superscripts right after a digit are exponents: this sum of powers
	// of two (the P-256 prime) reads as a Luhn-valid number in a card
	// range if they are taken as digits.
	d := pan.New()
	for _, x := range []string{"p = 2²⁵⁶ - 2²²⁴ + 2¹⁹² + 2⁹⁶ - 1", "2^256 = 2²⁵⁶, 10⁹ and 10¹² and 10¹⁵"} {
		if ms := d.FindString(nil, x); len(ms) != 0 {
			t.Errorf("exponents %q: %d matches", pantest.Redact(x), len(ms))
		}
	}
}
