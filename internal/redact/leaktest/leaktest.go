// Package leaktest plants card numbers in the forms people and programs
// write them, and checks outputs for them whatever the encoding. It is for
// tests of every output that must hold no cardholder data.
package leaktest

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/pcistream/pcistream/internal/pan"
)

// Form is a PAN written one way.
type Form struct {
	Name string
	Text string
	// Detected says whether today's internal/pan detector finds the form.
	// Outputs that rely on detection alone (the masker's sanitized topic, the
	// log handler) catch only these; dead letters must catch every form.
	Detected bool
}

// Forms returns p (digits) written in the common plain and odd forms: with
// separators, glued to letters, escaped for JSON, URLs and HTML, in other
// digit scripts.
func Forms(p string) []Form {
	groups := func(sep string) string {
		var parts []string
		for i := 0; i < len(p); i += 4 {
			parts = append(parts, p[i:min(i+4, len(p))])
		}
		return strings.Join(parts, sep)
	}
	each := func(f func(c rune) string) string {
		var b strings.Builder
		for _, c := range p {
			b.WriteString(f(c))
		}
		return b.String()
	}
	shift := func(zero rune) string { return each(func(c rune) string { return string(zero + c - '0') }) }
	fs := []Form{
		{Name: "plain", Text: p},
		{Name: "spaces", Text: groups(" ")},
		{Name: "dashes", Text: groups("-")},
		{Name: "glued-prefix", Text: "cardnumber" + p},
		{Name: "glued-key", Text: "k" + p},
		{Name: "glued-suffix", Text: p + "x"},
		{Name: "go-error", Text: `strconv.ParseInt: parsing "` + p + `x": invalid syntax`},
		{Name: "tabs", Text: groups("\t")},
		{Name: "two-spaces", Text: groups("  ")},
		{Name: "spaced-dash", Text: groups(" - ")},
		{Name: "nbsp", Text: groups("\u00a0")},
		{Name: "zero-width", Text: groups("\u200b")},
		{Name: "colons", Text: groups(":")},
		{Name: "slashes", Text: groups("/")},
		{Name: "mixed", Text: p[:4] + " " + p[4:8] + "-" + p[8:12] + "." + p[12:]},
		{Name: "json-escape", Text: each(func(c rune) string { return `\u00` + strconv.FormatInt(int64(c), 16) })},
		{Name: "percent", Text: each(func(c rune) string { return "%" + strconv.FormatInt(int64(c), 16) })},
		{Name: "html-dec", Text: each(func(c rune) string { return "&#" + strconv.Itoa(int(c)) + ";" })},
		{Name: "html-hex", Text: each(func(c rune) string { return "&#x" + strconv.FormatInt(int64(c), 16) + ";" })},
		{Name: "fullwidth", Text: shift('０')},
		{Name: "arabic-indic", Text: shift('٠')},
		{Name: "plus", Text: "+" + p},
		{Name: "hash", Text: "#" + p},
		{Name: "star", Text: "*" + p},
		{Name: "amount-tail", Text: p + ".00"},
	}
	d := pan.New()
	for i := range fs {
		fs[i].Detected = d.ContainsString(fs[i].Text)
	}
	return fs
}

var (
	jsonU   = regexp.MustCompile(`\\u00([0-9a-fA-F]{2})`)
	jsonEsc = regexp.MustCompile(`\\[tnrbf"/\\]`)
	pct     = regexp.MustCompile(`%([0-9a-fA-F]{2})`)
	htmlHex = regexp.MustCompile(`&#[xX]([0-9a-fA-F]{1,6});`)
	htmlDec = regexp.MustCompile(`&#([0-9]{1,7});`)
)

// View decodes the encodings that hide digits (JSON and percent escapes,
// HTML numeric entities, non-ASCII decimal digits) so a check can look at the
// digits as a reader would see them.
func View(s string) string {
	dec := func(re *regexp.Regexp, base int) {
		s = re.ReplaceAllStringFunc(s, func(m string) string {
			sub := re.FindStringSubmatch(m)
			v, err := strconv.ParseInt(sub[1], base, 32)
			if err != nil {
				return m
			}
			return string(rune(v))
		})
	}
	for range 2 { // twice: a percent-encoded JSON escape, a JSON-escaped entity
		dec(jsonU, 16)
		s = jsonEsc.ReplaceAllString(s, " ")
		dec(pct, 16)
		dec(htmlHex, 16)
		dec(htmlDec, 10)
	}
	var b strings.Builder
	for _, c := range s {
		if c > unicode.MaxASCII && unicode.IsDigit(c) {
			c = '0' + digitValue(c)
		}
		b.WriteRune(c)
	}
	return b.String()
}

// digitValue returns the value of a Unicode decimal digit: Nd ranges are
// runs of ten starting at zero.
func digitValue(c rune) rune {
	for _, r := range unicode.Nd.R16 {
		if c >= rune(r.Lo) && c <= rune(r.Hi) {
			return (c - rune(r.Lo)) % 10
		}
	}
	for _, r := range unicode.Nd.R32 {
		if c >= rune(r.Lo) && c <= rune(r.Hi) {
			return (c - rune(r.Lo)) % 10
		}
	}
	return 0
}

// Leaks reports whether s shows the digits of p in order once encodings are
// decoded and everything but letters, digits and '*' (a masked digit) is
// dropped: a PAN split by any separator, escape or invisible character
// counts.
func Leaks(s, p string) bool {
	var b strings.Builder
	for _, c := range View(s) {
		if unicode.IsLetter(c) || (c >= '0' && c <= '9') || c == '*' {
			b.WriteRune(c)
		}
	}
	return strings.Contains(b.String(), p)
}

// HasCode reports whether s shows the digits code as a number of its own
// (not inside a longer digit run) once encodings are decoded.
func HasCode(s, code string) bool {
	v := View(s)
	for i := 0; ; {
		j := strings.Index(v[i:], code)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(code)
		if (j == 0 || v[j-1] < '0' || v[j-1] > '9') && (end == len(v) || v[end] < '0' || v[end] > '9') {
			return true
		}
		i = j + 1
	}
}

// Redact returns s safe to print in test output: encodings decoded (View)
// and every digit replaced by '#', so no form of a PAN survives.
func Redact(s string) string {
	var b strings.Builder
	for _, c := range View(s) {
		if unicode.IsDigit(c) {
			c = '#'
		}
		b.WriteRune(c)
	}
	return b.String()
}
