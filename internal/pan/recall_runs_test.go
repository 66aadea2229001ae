package pan_test

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/pan/pantest"
)

// Recall gaps of the run checks (IBAN, phone, shape, look-alike rules)
// found by an adversarial probe. Every test names its cases and prints
// inputs redacted only: the texts hold card numbers.

// runPANs: several brands and every common length 12..19.
var runPANs = []brand{
	{pan.Visa, 13}, {pan.Visa, 16}, {pan.Visa, 19}, {pan.Mastercard, 16}, {pan.Amex, 15},
	{pan.Diners, 14}, {pan.Maestro, 12}, {pan.Maestro, 17}, {pan.Discover, 16}, {pan.JCB, 16},
	{pan.UnionPay, 18}, {pan.UnionPay, 19},
}

// genRunPANs returns k PANs of each runPANs entry.
func genRunPANs(seed uint64, k int) []string {
	r := newRand(seed)
	var out []string
	for _, p := range runPANs {
		for range k {
			out = append(out, string(pantest.Generate(r, p.n, p.l)))
		}
	}
	return out
}

// expectMasked checks that text, which holds the PAN digits p, is
// reported (a match with p's last four) and masked under every policy
// with p unreadable afterwards, nothing found again, and masking
// idempotent.
func expectMasked(t *testing.T, d *pan.Detector, name, text, p string) bool {
	t.Helper()
	ms := d.FindString(nil, text)
	found := false
	for _, m := range ms {
		found = found || (m.Digits == len(p) && string(m.Last4[:]) == p[len(p)-4:])
	}
	ok := true
	if !found {
		t.Errorf("%s: %q: PAN not found (%d matches)", name, pantest.Redact(text), len(ms))
		ok = false
	}
	return maskChecks(t, d, name, text, -1, []string{p}, pantest.Leaks) && ok
}

// expectNone checks that the look-alike text is neither reported nor
// changed.
func expectNone(t *testing.T, d *pan.Detector, name, text string) {
	t.Helper()
	if ms := d.FindString(nil, text); len(ms) != 0 {
		t.Errorf("%s: %q: %d matches, want 0", name, pantest.Redact(text), len(ms))
	}
	if out, n := d.MaskString(text, pan.Full); n != 0 || out != text {
		t.Errorf("%s: look-alike changed", name)
	}
}

// ibanOf returns a valid IBAN of country cc with the given BBAN.
func ibanOf(cc, bban string) string {
	rem := 0
	for _, c := range bban + cc + "00" {
		if c >= 'A' && c <= 'Z' {
			rem = (rem*100 + int(c-'A'+10)) % 97
		} else {
			rem = (rem*10 + int(c-'0')) % 97
		}
	}
	return fmt.Sprintf("%s%02d%s", cc, 98-rem, bban)
}

// TestRecallPANAfterIBANInRun: a valid IBAN earlier in the same digit run
// rejects only its own groups; a PAN after it, whatever the separator, is
// found and masked. The IBANs themselves stay untouched.
func TestRecallPANAfterIBANInRun(t *testing.T) {
	d := pan.New()
	ibans := []string{"DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "NL91ABNA0417164300", "FR7630006000011234567890189",
		ibanOf("BE", "539007547034"), ibanOf("NO", "86011117947")}
	for _, ib := range ibans {
		expectNone(t, d, "iban alone", ib)
	}
	for k, p := range genRunPANs(1, 2) {
		for si, sep := range []string{",", " ", "\t", "|", ";", ", ", " | "} {
			ib := ibans[(k+si)%len(ibans)]
			for fi, text := range []string{
				ib + sep + p,
				ib + sep + pantest.Format([]byte(p), pantest.Spaces),
				"iban=" + ib + sep + "card=" + p,
			} {
				expectMasked(t, d, fmt.Sprintf("pan %d sep %d form %d", k, si, fi), text, p)
			}
		}
	}
}

// TestRecallCodeBeforePANNotIBAN: a short upper-case code before a PAN
// ("ref TX01 4331 ...") is not an IBAN: only the length registered for a
// country counts, the IBAN must end where its token ends, and unknown
// country codes are none. (The old check accepted a mod-97 hit at any
// length 15..34: about one PAN in twelve was lost.)
func TestRecallCodeBeforePANNotIBAN(t *testing.T) {
	d := pan.New()
	// IBANs of the registry's lengths stay look-alikes, spaced or not,
	// with text after them.
	r := newRand(22)
	for _, c := range []struct {
		cc string
		l  int
	}{{"NO", 15}, {"BE", 16}, {"NL", 18}, {"DE", 22}, {"GB", 22}, {"ES", 24}, {"IT", 27}, {"PL", 28}, {"BR", 29}, {"MT", 31}, {"LC", 32}, {"RU", 33}} {
		bban := make([]byte, c.l-4)
		for k := range bban {
			bban[k] = byte('0' + r.IntN(10))
		}
		ib := ibanOf(c.cc, string(bban))
		var sp strings.Builder
		for k := 0; k < len(ib); k += 4 {
			if k > 0 {
				sp.WriteByte(' ')
			}
			sp.WriteString(ib[k:min(k+4, len(ib))])
		}
		for _, s := range []string{ib, sp.String(), "IBAN: " + sp.String() + " HTTP/1.1", `{"iban":"` + ib + `"}`} {
			expectNone(t, d, "iban "+c.cc, s)
		}
	}
	codes := []string{"TX01", "AB12", "ZZ99", "DE01", "GB33", "FR14", "XK05", "QA7"}
	for k, p := range genRunPANs(2, 20) {
		c := codes[k%len(codes)]
		for fi, text := range []string{
			"ref " + c + " " + pantest.Format([]byte(p), pantest.Spaces),
			"ref " + c + " " + p,
			c + "+" + pantest.Format([]byte(p), pantest.Plus),
		} {
			expectMasked(t, d, fmt.Sprintf("pan %d code %d form %d", k, k%len(codes), fi), text, p)
		}
	}
}

// TestRecallFormPlusNotPhone: in form-encoded text '+' is a space, so a
// '+' right after a letter or digit is no E.164 phone prefix.
func TestRecallFormPlusNotPhone(t *testing.T) {
	d := pan.New()
	for k, p := range genRunPANs(3, 3) {
		for fi, text := range []string{
			"a+" + p,
			"comment=my+card+is+" + p,
			"q=" + p + "&x=1",
			"n=7+" + pantest.Format([]byte(p), pantest.Plus),
		} {
			expectMasked(t, d, fmt.Sprintf("pan %d form %d", k, fi), text, p)
		}
	}
	// Phone numbers stay look-alikes.
	for _, s := range []string{"+442079460958", "tel:+14155552671", "call +44 20 7946 0958", "(+491711234567)", "phone=+61412345678"} {
		expectNone(t, d, "phone", s)
	}
}

// TestRecallScientificNotation: a PAN printed as a float in scientific
// notation (Java Double.toString, Jackson, Go %v of a float64) is an exact
// integer of 12-19 digits: found and masked.
func TestRecallScientificNotation(t *testing.T) {
	d := pan.New()
	for k, p := range genRunPANs(4, 3) {
		if len(p) > 17 {
			continue // beyond float64's 17 significant digits
		}
		mant := strings.TrimRight(p[1:], "0")
		exp := strconv.Itoa(len(p) - 1)
		for fi, text := range []string{
			p[:1] + "." + mant + "E" + exp,
			p[:1] + "." + mant + "e+" + exp,
			`{"card":` + p[:1] + "." + mant + "E" + exp + `,"n":1}`,
			"amount=-1.5 card=" + p[:1] + "." + mant + "e" + exp,
		} {
			expectMasked(t, d, fmt.Sprintf("pan %d form %d", k, fi), text, p)
		}
		if f, err := strconv.ParseFloat(p, 64); err == nil && strconv.FormatFloat(f, 'f', 0, 64) == p {
			expectMasked(t, d, fmt.Sprintf("pan %d go %%v", k), fmt.Sprintf("v=%v", f), p)
		}
	}
	// At the end of a very long run (cut after 96 digits), after a PAN
	// that masking turns into stars.
	ps := genRunPANs(44, 1)
	for k, p := range ps {
		if len(p) > 17 {
			continue
		}
		q := ps[(k+1)%len(ps)]
		long := "12345678901234567890 12345678901234567890 12345678901234567890\t" + q + "\t." + p[:1] + "." + p[1:] + "E" + strconv.Itoa(len(p)-1)
		expectMasked(t, d, fmt.Sprintf("pan %d long run", k), long, p)
		expectMasked(t, d, fmt.Sprintf("pan %d long run, first", k), long, q)
	}
	// Fractions and other floats stay look-alikes.
	for _, s := range []string{"0.4532015112830366", "1.2345678901234567e-05", "4.111111111111111E3", "4.111111111111111E25", "x=6.02214076e+23"} {
		expectNone(t, d, "float", s)
	}
}

// TestRecallThousandsGrouping: a PAN printed with locale thousands
// separators ("4,111,...") of every length, with ',', '.', ' ' and U+202F.
func TestRecallThousandsGrouping(t *testing.T) {
	d := pan.New()
	for k, p := range genRunPANs(5, 2) {
		for si, sep := range []string{",", ".", " ", "\u202f"} {
			var b strings.Builder
			f := len(p) % 3
			if f == 0 {
				f = 3
			}
			b.WriteString(p[:f])
			for i := f; i < len(p); i += 3 {
				b.WriteString(sep)
				b.WriteString(p[i : i+3])
			}
			expectMasked(t, d, fmt.Sprintf("pan %d sep %d", k, si), b.String(), p)
			expectMasked(t, d, fmt.Sprintf("pan %d sep %d in text", k, si), "total: "+b.String()+" EUR", p)
		}
	}
}

// TestRecallPaymentMessageFields: PANs glued into EMV TLV data (tag 5A,
// BCD and 'F'-padded when odd; tag 57, track 2 equivalent) and into ISO
// 8583 field 2 (LLVAR: a length 12-19, then the PAN, inside a longer
// digit run), as payment logs print them.
func TestRecallPaymentMessageFields(t *testing.T) {
	d := pan.New()
	for k, p := range genRunPANs(6, 2) {
		bcd := p
		if len(bcd)%2 == 1 {
			bcd += "F"
		}
		tag5A := fmt.Sprintf("5A%02X%s", len(bcd)/2, bcd)
		tr2 := p + "D" + "2512" + "201" + "0000000000"
		if len(tr2)%2 == 1 {
			tr2 += "F"
		}
		tag57 := fmt.Sprintf("57%02X%s", len(tr2)/2, tr2)
		for fi, text := range []string{
			tag5A,
			"9F0206000000001000" + tag5A + "5F24032512319F1A020840",
			"emv=" + tag5A + " ok",
			tag57,
			"9F2701809F360200" + tag57 + "5F3401019F10",
			fmt.Sprintf("0200F23A40010AE1800A%02d%s000000000000012500", len(p), p),
			fmt.Sprintf("field2=%02d%s0000001000", len(p), p),
			tag5A + "\t12345,.1234567",
		} {
			expectMasked(t, d, fmt.Sprintf("pan %d form %d", k, fi), text, p)
		}
		// Two fields of one message in one digit run: both found.
		q := genRunPANs(uint64(100+k), 1)[k%len(runPANs)]
		two := tag5A + fmt.Sprintf("57%02X%sD25122010", (len(q)+9)/2, q)
		expectMasked(t, d, fmt.Sprintf("pan %d two fields, first", k), two, p)
		expectMasked(t, d, fmt.Sprintf("pan %d two fields, second", k), two, q)
	}
	// Long ids and other digit runs stay look-alikes.
	for _, s := range []string{
		"170000000000000000000000", "12345678901234567890123", "5A08123456789012345678", "5713" + "1234567890123456" + "D2512",
		"trace=7a3f5A0900000000000000000000",
	} {
		expectNone(t, d, "long run", s)
	}
}

// TestRecallRunsMixed: the new forms glued together and to other numbers
// in random order keep Mask's promises: every PAN Find reports is masked,
// nothing outside them changes, nothing is found in the output (masking a
// PAN never makes a neighbour a PAN: context rules see a masked digit as a
// digit) and masking is idempotent.
func TestRecallRunsMixed(t *testing.T) {
	d := pan.New()
	r := newRand(7)
	gen := func() string {
		rp := runPANs[r.IntN(len(runPANs))]
		return string(pantest.Generate(r, rp.n, rp.l))
	}
	piece := func() string {
		p := gen()
		switch r.IntN(12) {
		case 0:
			return "DE89370400440532013000"
		case 1:
			if len(p)%2 == 1 {
				p += "F"
			}
			return fmt.Sprintf("5A%02X%s", len(p)/2, p)
		case 2:
			p += "D2512201"
			if len(p)%2 == 1 {
				p += "F"
			}
			return fmt.Sprintf("57%02X%s", len(p)/2, p)
		case 3:
			return fmt.Sprintf("%02d%s0000", len(p), p)
		case 4:
			return p[:1] + "." + p[1:] + "E" + strconv.Itoa(len(p)-1)
		case 5:
			return []string{"4,111,111,", "4 111 ", "41,", "1 2 3 4 ", "1234 5678 ", "ref TX01 "}[r.IntN(6)]
		case 6:
			return strconv.Itoa(r.IntN(100000))
		case 7:
			return "e+15"
		case 8:
			return "." + p[:r.IntN(len(p))]
		}
		return p
	}
	for it := range 10000 {
		var b strings.Builder
		for k := r.IntN(6); k >= 0; k-- {
			b.WriteString(piece())
			b.WriteString([]string{"", "", " ", ",", "+", "-", "x", "F", "\t"}[r.IntN(9)])
		}
		in := []byte(b.String())
		ms := d.Find(nil, in)
		for _, p := range policies {
			out, n := d.Mask(nil, in, p)
			if n != len(ms) || len(out) != len(in) {
				t.Fatalf("case %d %v: masked %d, found %d", it, p, n, len(ms))
			}
			prev := 0
			for _, m := range append(ms, pan.Match{Start: len(in), End: len(in)}) {
				if m.Start < prev || !bytes.Equal(in[prev:m.Start], out[prev:m.Start]) {
					t.Fatalf("case %d %v: %q: bytes outside the PANs changed", it, p, pantest.Redact(string(in)))
				}
				prev = m.End
			}
			if left := d.Find(nil, out); len(left) != 0 {
				t.Fatalf("case %d %v: %q -> %q: %d PANs left", it, p, pantest.Redact(string(in)), pantest.Redact(string(out)), len(left))
			}
			if again, n2 := d.Mask(nil, out, p); n2 != 0 || !bytes.Equal(again, out) {
				t.Fatalf("case %d %v: masking not idempotent", it, p)
			}
		}
	}
}

// TestRecallHexPrefixAfterDigits: "0x" is a hex prefix only where it starts
// a token: after a number that ends in 0 ("...0x4111..."), the PAN after the
// 'x' is found, whether that number is masked or not.
func TestRecallHexPrefixAfterDigits(t *testing.T) {
	d := pan.New()
	r := newRand(8)
	for k := 0; k < 12; k++ {
		rp := runPANs[k%len(runPANs)]
		var p1 string
		for p1 == "" || p1[len(p1)-1] != '0' {
			p1 = string(pantest.Generate(r, pan.Visa, 16))
		}
		p2 := string(pantest.Generate(r, rp.n, rp.l))
		for fi, text := range []string{"id 1230x" + p2, p1 + "x" + p2} {
			expectMasked(t, d, fmt.Sprintf("pan %d form %d", k, fi), text, p2)
		}
		expectMasked(t, d, fmt.Sprintf("pan %d first", k), p1+"x"+p2, p1)
		expectNone(t, d, "hex literal", "v=0x"+p2)
	}
}
