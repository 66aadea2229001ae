package pan_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/pan/pantest"
)

// Recall of PANs inside hex and base64 regions longer than one decoded
// window (384 bytes), or holding more PANs than one window keeps, and of
// base64 of UTF-16LE text. Failures name the case only: the texts hold
// card numbers.

// checkNested checks that text holds exactly the PANs pans (in order) and
// that Mask hides every one of them under every policy: same length,
// nothing readable in any decoding (pantest.Leaks), nothing found again,
// idempotent. It reports whether all held.
func checkNested(t *testing.T, d *pan.Detector, name, text string, pans []string) bool {
	t.Helper()
	return checkNestedLeak(t, d, name, text, pans, pantest.Leaks)
}

// checkNestedLeak is checkNested with the leak check leaks.
func checkNestedLeak(t *testing.T, d *pan.Detector, name, text string, pans []string, leaks func(text, pan string) bool) bool {
	t.Helper()
	ok := true
	ms := d.FindString(nil, text)
	if len(ms) != len(pans) {
		t.Errorf("%s: found %d PANs, want %d", name, len(ms), len(pans))
		ok = false
	} else {
		for i, m := range ms {
			if p := pans[i]; string(m.Last4[:]) != p[len(p)-4:] || m.Digits != len(p) {
				t.Errorf("%s: PAN %d: %d digits, last four %q; want %d, %q", name, i, m.Digits, m.Last4[:], len(p), p[len(p)-4:])
				ok = false
			}
		}
	}
	return maskChecks(t, d, name, text, len(pans), pans, leaks) && ok
}

// nestedPANs returns n PANs of several networks and lengths.
func nestedPANs(n int) []string {
	kinds := []struct {
		net pan.Network
		l   int
	}{{pan.Visa, 16}, {pan.Mastercard, 16}, {pan.Amex, 15}, {pan.Visa, 13}, {pan.Discover, 16}, {pan.Visa, 19}, {pan.Diners, 14}, {pan.Maestro, 12}}
	r := newRand(42)
	out := make([]string, n)
	for i := range out {
		k := kinds[i%len(kinds)]
		out[i] = string(pantest.Generate(r, k.net, k.l))
	}
	return out
}

// digitsLeak is a quick leak check for the offset sweeps: the digits of
// decode(token), for every token of text (split at quotes, spaces and
// colons), hold pan. pantest.Leaks, which tries every decoding, checks a
// sample of the same cases.
func digitsLeak(decode func(string) []byte) func(text, pan string) bool {
	return func(text, pn string) bool {
		for _, tok := range strings.FieldsFunc(text, func(r rune) bool { return r == '\'' || r == ' ' || r == ':' }) {
			var digits []byte
			for _, c := range decode(tok) {
				if c >= '0' && c <= '9' || c == '*' {
					digits = append(digits, c)
				}
			}
			if bytes.Contains(digits, []byte(pn)) {
				return true
			}
		}
		return false
	}
}

var (
	hexLeak = digitsLeak(func(s string) []byte { b, _ := hex.DecodeString(s); return b })
	b64Leak = digitsLeak(func(s string) []byte {
		for _, e := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			if b, err := e.DecodeString(s); err == nil {
				return b
			}
		}
		return nil
	})
)

// sweepOffsets: every offset up to 1300 near the ends of decoded windows
// (old and new: 384 bytes, each overlapping the one before by 96), every
// fourth elsewhere.
func sweepOffsets() []int {
	var out []int
	for off := 0; off <= 1300; off++ {
		near := false
		for _, e := range []int{378, 384, 660, 672, 760, 942, 960, 1141, 1224, 1248} {
			near = near || off >= e-40 && off <= e+4
		}
		if near || off%4 == 0 {
			out = append(out, off)
		}
	}
	return out
}

var b64Encodings = []struct {
	name string
	enc  *base64.Encoding
}{{"std", base64.StdEncoding}, {"url-raw", base64.RawURLEncoding}}

// TestNestedBase64ManyPANs: a base64 region holding more PANs than one
// decoded window keeps (maxSub, 8) has every one found and masked: the
// 9th and later were left in clear.
func TestNestedBase64ManyPANs(t *testing.T) {
	d := pan.New()
	all := nestedPANs(60)
	for _, n := range []int{1, 7, 8, 9, 10, 12, 16, 17, 20, 33, 60} {
		for _, e := range b64Encodings {
			for _, style := range []string{"", " "} {
				var plain strings.Builder
				for _, p := range all[:n] {
					plain.WriteString("pan " + pantest.Group(p, style) + "\n")
				}
				text := "data=" + e.enc.EncodeToString([]byte(plain.String())) + " end"
				if !checkNested(t, d, fmt.Sprintf("base64 %s of %d PANs sep %q", e.name, n, style), text, all[:n]) {
					break
				}
			}
		}
	}
	// Tight: PANs one byte apart, so two may share a base64 group.
	for _, n := range []int{9, 17, 25} {
		var plain strings.Builder
		for _, p := range all[:n] {
			plain.WriteString(p + ";")
		}
		text := base64.StdEncoding.EncodeToString([]byte(plain.String()))
		out, _ := d.Mask(nil, []byte(text), pan.First6Last4)
		for i, p := range all[:n] {
			if pantest.Leaks(string(out), p) {
				t.Errorf("base64 of %d PANs ';'-joined: PAN %d readable after masking", n, i)
			}
		}
	}
}

// numericFiller returns n bytes of a numeric CSV (digits, commas, spaces,
// dots, line breaks) in which no PAN hides.
func numericFiller(n int) string {
	const row = "17,204,9.5, 3\n2026,11,30,0.25\n"
	return strings.Repeat(row, n/len(row)+1)[:n]
}

// TestNestedHexLongDigitRun: hex of ASCII digits and spaces is one long
// digit run; a PAN anywhere in it, however far from its start, is found
// (only the first decoded window was looked into).
func TestNestedHexLongDigitRun(t *testing.T) {
	d := pan.New()
	pans := nestedPANs(4)
	fillers := []struct {
		name string
		f    func(int) string
	}{
		{"ones", func(n int) string { return strings.Repeat("1 ", n/2+1)[:n] }},
		{"ints", func(n int) string { return strings.Repeat("12 7 345 90 ", n/12+1)[:n] }},
	}
	for _, fl := range fillers {
		for _, off := range sweepOffsets() {
			p := pans[off%len(pans)]
			shown := p
			if off%2 == 1 {
				shown = pantest.Group(p, " ")
			}
			plain := fl.f(off) + " Pay " + shown + " " + fl.f(300)
			if len(d.FindString(nil, plain)) != 1 {
				t.Fatalf("%s filler, PAN at %d: not found in plain text", fl.name, off)
			}
			h := hex.EncodeToString([]byte(plain))
			leaks := hexLeak
			if off%16 == 0 {
				h, leaks = strings.ToUpper(h), pantest.Leaks
			}
			if !checkNestedLeak(t, d, fmt.Sprintf("hex of %s filler, PAN at %d", fl.name, off), "x'"+h+"'", []string{p}, leaks) {
				return
			}
		}
		// The filler alone holds no PAN.
		if ms := d.FindString(nil, hex.EncodeToString([]byte(fl.f(3000)))); len(ms) != 0 {
			t.Errorf("hex of %s filler: %d false positives", fl.name, len(ms))
		}
	}
	// Two PANs far apart in one run, and many in one run.
	plain := numericFiller(500) + " Pay " + pans[0] + " " + numericFiller(900) + " Pay " + pans[1] + " " + numericFiller(10)
	checkNested(t, d, "hex of two PANs 900 bytes apart", hex.EncodeToString([]byte(plain)), pans[:2])
	many := nestedPANs(30)
	var b strings.Builder
	for _, p := range many {
		b.WriteString("Pay " + p + " " + numericFiller(40) + " ")
	}
	checkNested(t, d, "hex of 30 PANs in one digit run", hex.EncodeToString([]byte(b.String())), many)
}

// TestNestedBase64WindowEdge: a PAN in base64 of a long numeric text is
// found wherever it falls, window edges included (decoded offsets near
// 365-379, 746-760, ... were missed).
func TestNestedBase64WindowEdge(t *testing.T) {
	d := pan.New()
	pans := nestedPANs(4)
	for _, e := range b64Encodings {
		for _, off := range sweepOffsets() {
			p := pans[off%len(pans)]
			shown := p
			if off%3 == 2 {
				shown = pantest.Group(p, "-")
			}
			plain := numericFiller(off) + "\ncard " + shown + "\n" + numericFiller(200)
			if len(d.FindString(nil, plain)) != 1 {
				t.Fatalf("numeric CSV, PAN at %d: not found in plain text", off)
			}
			text := "blob:" + e.enc.EncodeToString([]byte(plain))
			leaks := b64Leak
			if off%16 == 0 {
				leaks = pantest.Leaks
			}
			if !checkNestedLeak(t, d, fmt.Sprintf("base64 %s of numeric CSV, PAN at %d", e.name, off), text, []string{p}, leaks) {
				return
			}
		}
	}
	if ms := d.FindString(nil, base64.StdEncoding.EncodeToString([]byte(numericFiller(5000)))); len(ms) != 0 {
		t.Errorf("base64 of numeric CSV: %d false positives", len(ms))
	}
}

// utf16le returns s (ASCII) as UTF-16LE bytes.
func utf16le(s string) []byte {
	out := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		out = append(out, s[i], 0)
	}
	return out
}

// TestNestedBase64UTF16: base64 of UTF-16LE text (PowerShell
// -EncodedCommand, .NET) with a PAN, at every alignment and offset, short
// and longer than a filter block.
func TestNestedBase64UTF16(t *testing.T) {
	d := pan.New()
	pans := nestedPANs(8)
	for i, p := range pans {
		for _, e := range b64Encodings {
			for pre := 0; pre <= 90; pre++ {
				shown := p
				if pre%2 == 1 {
					shown = pantest.Group(p, " ")
				}
				plain := utf16le(strings.Repeat("x", pre) + shown + " ok")
				if pre%5 == 0 {
					plain = append([]byte{0xff, 0xfe}, plain...) // BOM
				}
				for _, post := range []string{"", strings.Repeat("a", 100)} {
					text := "powershell -enc " + e.enc.EncodeToString(plain) + " " + post
					if !checkNested(t, d, fmt.Sprintf("base64 %s UTF-16LE, PAN %d after %d bytes, tail %d", e.name, i, pre, len(post)), text, []string{p}) {
						return
					}
				}
			}
		}
	}
	// The whole command, as PowerShell writes it.
	cmd := "Invoke-RestMethod -Uri https://pay.example/charge -Body @{card='" + pans[0] + "'; exp='12/27'}"
	checkNested(t, d, "PowerShell -EncodedCommand", "powershell.exe -NoProfile -EncodedCommand "+base64.StdEncoding.EncodeToString(utf16le(cmd)), pans[:1])
	// Look-alikes: base64 of UTF-16LE numbers that are no PAN. (A list
	// of numbers in UTF-16LE is one digit per group between NULs, as the
	// detector reads raw UTF-16; the base64 of it finds what the raw
	// text does, see below.)
	for _, s := range []string{"4111111111111112", "ts=1732960000123 ok", strings.Repeat("2026-11-30 12:00:00 ", 10), "Write-Host 'hello world'"} {
		text := base64.StdEncoding.EncodeToString(utf16le(s))
		if ms := d.FindString(nil, text); len(ms) != 0 {
			t.Errorf("base64 UTF-16LE look-alike %q: %d found", pantest.Redact(s), len(ms))
		}
	}
	for _, s := range []string{"1732960000123 1732960000124 1732960000125", "id 12345678901234567890", "amount 12.50 EUR, order 77812"} {
		raw := len(d.Find(nil, utf16le(s)))
		if n := len(d.FindString(nil, base64.StdEncoding.EncodeToString(utf16le(s)))); n != raw {
			t.Errorf("base64 UTF-16LE of %q: %d found, raw UTF-16LE %d", pantest.Redact(s), n, raw)
		}
	}
}

// TestNestedRandomRegions: long hex and base64 regions (of ASCII and
// UTF-16LE text) mixing PANs, numbers and words at random: the region
// holds the PANs its decoded text holds, and Mask hides every PAN that
// masking the decoded text hides; matches are ordered and disjoint and
// Mask changes nothing outside them. (Hex of a PAN with dashes is a
// documented miss: dashes only in base64.)
func TestNestedRandomRegions(t *testing.T) {
	d := pan.New()
	r := newRand(8)
	pieces := []string{"1 ", "17,204,9.5, ", "2026-11-30 ", "0.25\n", "Pay ", "order 77812 ", "x", "abc ", "card=", "  ", "12345678901234567890 "}
	for round := 0; round < 400; round++ {
		var plain strings.Builder
		var pans []string
		for plain.Len() < 200+r.IntN(2500) {
			if r.IntN(12) == 0 {
				nets := []pan.Network{pan.Visa, pan.Mastercard, pan.Amex, pan.Discover}
				lens := []int{16, 16, 15, 16}
				k := r.IntN(len(nets))
				p := string(pantest.Generate(r, nets[k], lens[k]))
				seps := []string{"", " ", "-"}
				if round%4 == 0 {
					seps = seps[:2]
				}
				plain.WriteString(" Pay " + pantest.Group(p, seps[r.IntN(len(seps))]) + " ")
				pans = append(pans, p)
				continue
			}
			plain.WriteString(pieces[r.IntN(len(pieces))])
		}
		raw := []byte(plain.String())
		decoded := raw
		if round%4 == 3 {
			decoded = utf16le(string(raw))
		}
		var text string
		switch round % 4 {
		case 0:
			text = hex.EncodeToString(raw)
		case 1:
			text = base64.StdEncoding.EncodeToString(raw)
		case 2:
			text = base64.RawURLEncoding.EncodeToString(raw)
		case 3:
			text = base64.StdEncoding.EncodeToString(utf16le(string(raw)))
		}
		name := fmt.Sprintf("round %d (encoding %d, %d bytes, %d PANs)", round, round%4, len(text), len(pans))
		in := []byte(text)
		ms := d.Find(nil, in)
		prev := 0
		for _, m := range ms {
			if m.Start < prev || m.End <= m.Start || m.End > len(in) {
				t.Fatalf("%s: bad match bounds %d-%d after %d", name, m.Start, m.End, prev)
			}
			prev = m.End
		}
		// (UTF-16LE text of numbers is read one digit per group, and
		// which look-alike windows of them form a Luhn-valid number
		// depends on where a decoded window starts, and on what masking
		// changed, in the raw UTF-16LE text too: only the PANs' masking
		// is compared there.)
		if want := len(d.Find(nil, decoded)); len(ms) != want && round%4 != 3 {
			t.Errorf("%s: found %d, %d in the decoded text", name, len(ms), want)
		}
		for _, p := range policies {
			out, _ := d.Mask(nil, in, p)
			outDecoded, _ := d.Mask(nil, decoded, p)
			prev := 0
			for _, m := range append(ms, pan.Match{Start: len(in), End: len(in)}) {
				if !bytes.Equal(in[prev:m.Start], out[prev:m.Start]) {
					t.Fatalf("%s %v: bytes outside the PANs changed in %d-%d", name, p, prev, m.Start)
				}
				prev = m.End
			}
			for i, pn := range pans {
				if pantest.Leaks(string(out), pn) && !pantest.Leaks(string(outDecoded), pn) {
					t.Errorf("%s %v: PAN %d readable after masking", name, p, i)
				}
			}
			if left := d.Find(nil, out); len(left) != 0 && round%4 != 3 {
				t.Errorf("%s %v: %d PANs left after masking", name, p, len(left))
			}
		}
	}
}

// TestNestedBase64NoSignal: a PAN whose base64 has no signal of its own
// (grouped 4-6-5: no nine digits in a row) after the window or the
// batch of matches before it, and after digits of the token (candidates
// of their own), is found: the token is decoded on from where the last
// window stopped, not from the next signal.
func TestNestedBase64NoSignal(t *testing.T) {
	d := pan.New()
	r := newRand(11)
	amex := string(pantest.Generate(r, pan.Amex, 15))
	visas := nestedPANs(12)
	for k := 0; k <= 12; k += 3 {
		for fill := 0; fill <= 420; fill += 7 {
			var plain strings.Builder
			var want []string
			for _, v := range visas[:k] {
				plain.WriteString("pan " + v + "\n")
				want = append(want, v)
			}
			plain.WriteString(strings.Repeat("lorem ipsum ", fill/12+1)[:fill])
			plain.WriteString("amex " + pantest.Group(amex, "-") + "\nthe end")
			want = append(want, amex)
			text := base64.StdEncoding.EncodeToString([]byte(plain.String()))
			if !checkNestedLeak(t, d, fmt.Sprintf("base64 of %d PANs, %d bytes, a 4-6-5 PAN", k, fill), text, want, b64Leak) {
				return
			}
		}
	}
}
