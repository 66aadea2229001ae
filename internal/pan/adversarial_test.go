package pan_test

import (
	"bytes"
	"encoding/json"
	"html"
	"math/rand/v2"
	"net/url"
	"testing"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/pan/pantest"
)

var policies = []pan.Policy{pan.First6Last4, pan.Last4, pan.Full}

// TestAdversarial: every form of the adversarial table is found (the right
// number of PANs, the right last four) and masked under every policy with no
// PAN left in any encoding; look-alikes are untouched. Output names cases
// only: the texts hold card numbers.
func TestAdversarial(t *testing.T) {
	d := pan.New()
	for _, c := range pantest.Adversarial() {
		ms := d.FindString(nil, c.Text)
		if len(ms) != c.PANs {
			t.Errorf("%s: found %d PANs, want %d", c.Name, len(ms), c.PANs)
			continue
		}
		if c.PANs > 0 && string(ms[0].Last4[:]) != c.PAN[len(c.PAN)-4:] {
			t.Errorf("%s: last four %q", c.Name, ms[0].Last4[:])
		}
		for _, p := range policies {
			out, n := d.Mask(nil, []byte(c.Text), p)
			if n != c.PANs || len(out) != len(c.Text) {
				t.Errorf("%s %v: masked %d, length %d -> %d", c.Name, p, n, len(c.Text), len(out))
			}
			if c.PANs == 0 && string(out) != c.Text {
				t.Errorf("%s %v: look-alike changed", c.Name, p)
			}
			if c.PANs > 0 && pantest.Leaks(string(out), c.PAN) {
				t.Errorf("%s %v: PAN still readable after masking", c.Name, p)
			}
			if left := d.Find(nil, out); len(left) != 0 {
				t.Errorf("%s %v: %d PANs left after masking", c.Name, p, len(left))
			}
			if again, n2 := d.Mask(nil, out, p); n2 != 0 || !bytes.Equal(again, out) {
				t.Errorf("%s %v: masking not idempotent", c.Name, p)
			}
		}
	}
}

// TestAdversarialInContainers: each form, put inside a JSON string, a URL
// query value and XML text by the standard encoders, is masked so that the
// container stays valid and decodes to text without the PAN.
func TestAdversarialInContainers(t *testing.T) {
	d := pan.New()
	for _, c := range pantest.Adversarial() {
		if c.PANs == 0 {
			continue
		}
		js, _ := json.Marshal(map[string]string{"msg": c.Text})
		out, _ := d.Mask(nil, js, pan.First6Last4)
		var back map[string]string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Errorf("%s: masked JSON invalid: %v", c.Name, err)
		} else if pantest.Leaks(back["msg"], c.PAN) {
			t.Errorf("%s: PAN readable in masked JSON", c.Name)
		}
		q := "a=1&msg=" + url.QueryEscape(c.Text)
		outs, _ := d.MaskString(q, pan.First6Last4)
		vals, err := url.ParseQuery(outs)
		if err != nil {
			t.Errorf("%s: masked query invalid: %v", c.Name, err)
		} else if pantest.Leaks(vals.Get("msg"), c.PAN) {
			t.Errorf("%s: PAN readable in masked query", c.Name)
		}
		x := "<m>" + html.EscapeString(c.Text) + "</m>"
		outx, _ := d.MaskString(x, pan.First6Last4)
		if pantest.Leaks(html.UnescapeString(outx), c.PAN) {
			t.Errorf("%s: PAN readable in masked XML", c.Name)
		}
	}
}

// TestMaskAsWritten: escaped digits are masked in their own encoding.
func TestMaskAsWritten(t *testing.T) {
	d := pan.New()
	for _, c := range []struct{ in, want string }{
		{`\u0034\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031`,
			`\u0034\u0031\u0031\u0031\u0031\u0031\u002a\u002a\u002a\u002a\u002a\u002a\u0031\u0031\u0031\u0031`},
		{"%34%31%31%31%31%31%31%31%31%31%31%31%31%31%31%31", "%34%31%31%31%31%31%2A%2A%2A%2A%2A%2A%31%31%31%31"},
		{"&#52;&#49;&#49;&#49;&#49;&#49;&#49;&#49;&#49;&#49;&#49;&#49;&#49;&#49;&#49;&#49;", "&#52;&#49;&#49;&#49;&#49;&#49;&#42;&#42;&#42;&#42;&#42;&#42;&#49;&#49;&#49;&#49;"},
		{"&#x34;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;", "&#x34;&#x31;&#x31;&#x31;&#x31;&#x31;&#x2a;&#x2a;&#x2a;&#x2a;&#x2a;&#x2a;&#x31;&#x31;&#x31;&#x31;"},
		{"４１１１１１１１１１１１１１１１", "４１１１１１******************１１１１"},
	} {
		out, n := d.MaskString(c.in, pan.First6Last4)
		if n != 1 || out != c.want {
			t.Errorf("%q masked to %q (%d)", pantest.Redact(c.in), pantest.Redact(out), n)
		}
	}
}

// TestEncodingReported: each finding says which encoding hid it.
func TestEncodingReported(t *testing.T) {
	d := pan.New()
	for _, c := range []struct{ in, want string }{
		{"4111111111111111", "plain"},
		{"4111 1111 1111 1111", "plain"},
		{"PAN4111111111111111", "glued"},
		{"4111\t1111\t1111\t1111", "separators"},
		{"4111 1111-1111.1111", "separators"},
		{`\u0034\u0031\u0031\u0031111111111111`, "json-escape"},
		{"%34%31%31%31111111111111", "percent"},
		{"&#52;&#49;11111111111111", "html-entity"},
		{"４１１１１１１１１１１１１１１１", "unicode-digits"},
		{"4111\u200b1111\u200b1111\u200b1111", "invisible"},
		{`\x34111111111111111`, "hex-escape"},
		{"4111%201111%201111%201111", "percent"},
	} {
		ms := d.FindString(nil, c.in)
		if len(ms) != 1 || ms[0].Encoding.String() != c.want {
			var got string
			if len(ms) > 0 {
				got = ms[0].Encoding.String()
			}
			t.Errorf("%q: %d matches, encoding %q, want %q", pantest.Redact(c.in), len(ms), got, c.want)
		}
	}
}

// TestVisible: BIN and last four only where six digits stay hidden; one
// case per length 12..19 and policy; Reveal agrees.
func TestVisible(t *testing.T) {
	for l := 12; l <= 19; l++ {
		for _, p := range policies {
			f, last := pan.Visible(l, p)
			var wf, wl int
			switch {
			case p == pan.First6Last4 && l >= 16:
				wf, wl = 6, 4
			case p == pan.First6Last4 || p == pan.Last4:
				wl = 4
			}
			if f != wf || last != wl {
				t.Errorf("Visible(%d, %v) = %d, %d; want %d, %d", l, p, f, last, wf, wl)
			}
			if l-f-last < pan.MinHidden {
				t.Errorf("Visible(%d, %v) hides only %d digits", l, p, l-f-last)
			}
		}
	}
	for l := 0; l < 12; l++ {
		if f, last := pan.Visible(l, pan.First6Last4); l-f-last < pan.MinHidden && l >= pan.MinHidden {
			t.Errorf("Visible(%d) hides too little", l)
		}
	}
	bin, l4 := pan.Reveal([]byte("4111111111111111"), pan.First6Last4)
	if bin != "411111" || l4 != "1111" {
		t.Errorf("Reveal 16: %q %q", bin, l4)
	}
	bin, l4 = pan.Reveal([]byte("378282246310005"), pan.First6Last4)
	if bin != "" || l4 != "0005" {
		t.Errorf("Reveal 15: %q %q", bin, l4)
	}
}

// TestMaskPerLength: the mask of a PAN of each length 12..19 hides at
// least six digits and shows the BIN only from 16 digits.
func TestMaskPerLength(t *testing.T) {
	d := pan.New()
	for l := 12; l <= 19; l++ {
		var digits []byte
		for _, n := range []pan.Network{pan.Maestro, pan.Visa, pan.Diners, pan.Amex, pan.UnionPay} {
			if hasLen(n, l) {
				digits = pantest.Generate(newRand(uint64(l)), n, l)
				break
			}
		}
		if digits == nil {
			t.Fatalf("no network of length %d", l)
		}
		for _, p := range policies {
			out, n := d.Mask(nil, digits, p)
			stars := bytes.Count(out, []byte("*"))
			f, last := pan.Visible(l, p)
			if n != 1 || stars != l-f-last || !bytes.Equal(out[:f], digits[:f]) || !bytes.Equal(out[l-last:], digits[l-last:]) {
				t.Errorf("length %d %v: %q", l, p, pantest.Redact(string(out)))
			}
			if stars < pan.MinHidden {
				t.Errorf("length %d %v: only %d digits hidden", l, p, stars)
			}
		}
	}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed+1)) }

func hasLen(n pan.Network, l int) bool {
	for _, x := range pantest.Lengths(n) {
		if x == l {
			return true
		}
	}
	return false
}
