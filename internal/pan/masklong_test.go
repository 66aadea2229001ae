package pan_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/pan/pantest"
)

// TestMaskLongInput: on inputs of many 64-byte blocks, with PANs in every
// style and encoding at every offset (across block boundaries too), Mask
// writes exactly what Find's matches say, after any prefix already in dst.
// Mask copies the input in its block filter, so this checks that no block
// is copied twice over a masked PAN or skipped.
func TestMaskLongInput(t *testing.T) {
	d := pan.New()
	r := rand.New(rand.NewPCG(21, 22))
	fillers := []string{
		"INFO [checkout] payment authorized after upstream timeout ",
		"ts=1732361330123 ip=10.0.12.7:8443 amount=12.50 id=550e8400-e29b-41d4-a716-446655440000 ",
		"phone=+44 20 7946 0958 v=2.14.3 ", "café ÄÖÜ данные 数据 ", "%20%3D&amp;\\n ", "2026-11-23T11:28:50.123Z ",
		"x", "1", "12 ", "\t",
	}
	nets := pan.Networks()
	for round := 0; round < 400; round++ {
		var in bytes.Buffer
		size := 64 + r.IntN(6000)
		for in.Len() < size {
			if r.IntN(6) == 0 {
				n := nets[r.IntN(len(nets))]
				ls := pantest.Lengths(n)
				digits := pantest.Generate(r, n, ls[r.IntN(len(ls))])
				st := pantest.Styles()[r.IntN(len(pantest.Styles()))]
				c := pantest.Contexts()[r.IntN(len(pantest.Contexts()))]
				text, _ := pantest.Embed(pantest.Format(digits, st), c)
				in.WriteString(text)
				continue
			}
			in.WriteString(fillers[r.IntN(len(fillers))])
		}
		b := in.Bytes()
		prefix := []byte("prefix:")[:r.IntN(8)]
		ms := d.Find(nil, b)
		for _, p := range []pan.Policy{pan.First6Last4, pan.Full} {
			want := append([]byte(nil), prefix...)
			prev := 0
			for k := range ms {
				want = append(want, b[prev:ms[k].Start]...)
				want = pan.AppendMasked(want, b, &ms[k], p)
				prev = ms[k].End
			}
			want = append(want, b[prev:]...)
			dst := append(make([]byte, 0, r.IntN(2)*(len(prefix)+len(b))), prefix...)
			got, n := d.Mask(dst, b, p)
			if n != len(ms) || !bytes.Equal(got, want) {
				t.Fatalf("round %d %v: Mask differs from Find's matches (%d masked, %d found, len %d want %d)", round, p, n, len(ms), len(got), len(want))
			}
			if len(d.Find(nil, got[len(prefix):])) != 0 {
				t.Fatalf("round %d %v: a PAN is left after masking", round, p)
			}
		}
	}
}
