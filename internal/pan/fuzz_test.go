package pan_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/pan/pantest"
)

func fuzzSeeds(f *testing.F) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range pan.Networks() {
		for _, l := range pantest.Lengths(n) {
			d := pantest.Generate(r, n, l)
			st := pantest.Styles()[r.IntN(len(pantest.Styles()))]
			c := pantest.Contexts()[r.IntN(len(pantest.Contexts()))]
			text, _ := pantest.Embed(pantest.Format(d, st), c)
			f.Add([]byte(text))
		}
	}
	v := pantest.Format(pantest.Generate(r, pan.Visa, 16), pantest.Spaces)
	for _, c := range pantest.Adversarial() {
		f.Add([]byte(c.Text))
	}
	for _, s := range []string{
		"", "4", "qty 2 " + v + " 1", "FR76 " + v, v + " " + v, "%204111111111111111", `\n4111111111111111`,
		"4111111111111111-4111111111111111", "+4111111111111111", "4111%201111%201111%201111",
		"550e8400-e29b-41d4-a716-446655440000", "1.2.3.4", "411111******1111",
		`\u0034\u0031\u0031\u00311111111111111`, "%34%31%31%311111111111111", "&#52;&#49;11111111111111",
		"４１１１１１１１１１１１１１１１", "4111\u200b1111\u200b1111\u200b1111", "%2534%2531111111111111111",
		"\\u0034111111111111111", "\\u0026#52;111111111111111", "4111\t1111 - 1111/1111",
	} {
		f.Add([]byte(s))
	}
}

// FuzzMask: masking never panics, keeps the length and every byte outside
// the PANs Find reports, is idempotent, and leaves no PAN the detector
// would report.
func FuzzMask(f *testing.F) {
	fuzzSeeds(f)
	d := pan.New()
	f.Fuzz(func(t *testing.T, in []byte) {
		ms := d.Find(nil, in)
		for _, p := range []pan.Policy{pan.First6Last4, pan.Last4, pan.Full} {
			out, n := d.Mask(nil, in, p)
			if len(out) != len(in) {
				t.Fatalf("%v: length %d -> %d", p, len(in), len(out))
			}
			if n != len(ms) {
				t.Fatalf("%v: masked %d, Find reports %d", p, n, len(ms))
			}
			prev := 0
			for _, m := range append(ms, pan.Match{Start: len(in), End: len(in)}) {
				if !bytes.Equal(in[prev:m.Start], out[prev:m.Start]) {
					t.Fatalf("%v: bytes outside the PANs changed in %d-%d", p, prev, m.Start)
				}
				prev = m.End
			}
			if n == 0 && !bytes.Equal(in, out) {
				t.Fatalf("%v: n == 0 but output differs", p)
			}
			if left := d.Find(nil, out); len(left) != 0 {
				t.Fatalf("%v: %d PANs remain after masking, first at %d-%d", p, len(left), left[0].Start, left[0].End)
			}
			again, n2 := d.Mask(nil, out, p)
			if n2 != 0 || !bytes.Equal(again, out) {
				t.Fatalf("%v: not idempotent (%d more)", p, n2)
			}
			s, ns := d.MaskString(string(in), p)
			if s != string(out) || ns != n {
				t.Fatalf("%v: MaskString differs from Mask", p)
			}
		}
	})
}

// FuzzFind: matches are ordered, disjoint, in range, and each one's digits
// are a valid PAN of the reported network.
func FuzzFind(f *testing.F) {
	fuzzSeeds(f)
	d := pan.New()
	f.Fuzz(func(t *testing.T, in []byte) {
		ms := d.Find(nil, in)
		if d.Contains(in) != (len(ms) > 0) {
			t.Fatal("Contains disagrees with Find")
		}
		prev := 0
		for _, m := range ms {
			if m.Start < prev || m.End <= m.Start || m.End > len(in) {
				t.Fatalf("bad match bounds %d-%d (prev end %d, len %d)", m.Start, m.End, prev, len(in))
			}
			prev = m.End
			var digits []byte
			span := in[m.Start:m.End]
			for i := 0; i < len(span); i++ {
				switch {
				case span[i] == '%':
					i += 2
				case span[i] >= '0' && span[i] <= '9':
					digits = append(digits, span[i])
				}
			}
			if m.Encoding&^pan.EncGlued != 0 {
				continue // escaped or non-ASCII digits: checked by the table tests
			}
			net, ok := pan.Identify(digits)
			if !ok || net != m.Network || len(digits) != m.Digits || !bytes.Equal(digits[len(digits)-4:], m.Last4[:]) {
				t.Fatalf("match %d-%d: digits do not identify as %v", m.Start, m.End, m.Network)
			}
		}
	})
}
