package pan_test

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/pan/pantest"
)

// mixedText is log text with PANs in every style, some split across any
// read boundary a stream might see.
func mixedText(r *rand.Rand, lines int) []byte {
	var b bytes.Buffer
	for i := 0; i < lines; i++ {
		n := pan.Networks()[r.IntN(len(pan.Networks()))]
		ls := pantest.Lengths(n)
		st := pantest.Styles()[r.IntN(len(pantest.Styles()))]
		c := pantest.Contexts()[r.IntN(len(pantest.Contexts()))]
		if !c.Fits(st) {
			st = pantest.Contiguous
		}
		text, _ := pantest.Embed(pantest.Format(pantest.Generate(r, n, ls[r.IntN(len(ls))]), st), c)
		b.WriteString(text)
		if r.IntN(3) == 0 {
			b.WriteString(" 12 34 5678 2026-11-23 +44 20 7946 0958 ")
		} else {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func TestMaskStreamEqualsMask(t *testing.T) {
	d := pan.New()
	r := rand.New(rand.NewPCG(11, 12))
	in := mixedText(r, 400)
	want, wantN := d.Mask(nil, in, pan.First6Last4)
	for name, rd := range map[string]func() *bytes.Reader{
		"whole": func() *bytes.Reader { return bytes.NewReader(in) },
	} {
		for _, mode := range []string{"plain", "one-byte", "half"} {
			var src = iotestReader(mode, rd())
			var out bytes.Buffer
			st, err := d.MaskStream(&out, src, pan.First6Last4, pan.MaxBuffer(4096))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), want) || st.PANs != wantN || st.Bytes != int64(len(in)) || st.FailClosed != 0 {
				t.Errorf("%s/%s: stream output differs from Mask (%d vs %d PANs, fail-closed %d)", name, mode, st.PANs, wantN, st.FailClosed)
			}
		}
	}
}

func iotestReader(mode string, r *bytes.Reader) interface{ Read([]byte) (int, error) } {
	switch mode {
	case "one-byte":
		return iotest.OneByteReader(r)
	case "half":
		return iotest.HalfReader(r)
	}
	return r
}

// TestMaskStreamLongLine: a line longer than the buffer is never passed raw,
// including a PAN that straddles the buffer boundary.
func TestMaskStreamLongLine(t *testing.T) {
	d := pan.New()
	r := rand.New(rand.NewPCG(13, 14))
	v := pantest.Format(pantest.Generate(r, pan.Visa, 16), pantest.Spaces)
	// 1) long line with split points: output equals Mask.
	long := []byte(strings.Repeat("x=1 y=2, ", 2000) + v + strings.Repeat(" z=3;", 2000))
	var out bytes.Buffer
	st, err := d.MaskStream(&out, iotest.HalfReader(bytes.NewReader(long)), pan.Last4, pan.MaxBuffer(1024))
	want, _ := d.Mask(nil, long, pan.Last4)
	if err != nil || !bytes.Equal(out.Bytes(), want) || st.PANs != 1 {
		t.Errorf("long line: err %v, PANs %d, equal %v", err, st.PANs, bytes.Equal(out.Bytes(), want))
	}
	// 2) no split point at all (digits and spaces only), PAN across the
	// buffer boundary: everything is masked, nothing raw.
	soup := []byte(strings.Repeat("1 ", 600) + v + strings.Repeat(" 2", 600))
	out.Reset()
	st, err = d.MaskStream(&out, bytes.NewReader(soup), pan.First6Last4, pan.MaxBuffer(1200))
	if err != nil || len(out.Bytes()) != len(soup) {
		t.Fatalf("soup: err %v len %d", err, out.Len())
	}
	if st.FailClosed == 0 {
		t.Error("expected fail-closed masking")
	}
	if d.Contains(out.Bytes()) || bytes.Contains(out.Bytes(), []byte(v[:9])) {
		t.Errorf("soup: PAN or part of it left: %q", pantest.Redact(string(out.Bytes()[1100:1300])))
	}
}

func TestSplitPoint(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"abc\n4111", 4}, {"4111 1111", 0}, {"xyzgh", 0}, {"xyz gh", 4}, {"NDEx MTEx", 0}, {"your 4111", 5}, {"%AB", 0}, {"a,b", 0}, {"a(b", 2}, {"4111,", 0}, {"", 0}, {"1234-", 0}, {"ab\\n", 0},
	} {
		if got := pan.SplitPoint([]byte(c.in)); got != c.want {
			t.Errorf("SplitPoint(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

// FuzzSplit: masking b[:k] and b[k:] separately, k = SplitPoint of any
// prefix, gives exactly Mask(b).
func FuzzSplit(f *testing.F) {
	fuzzSeeds(f)
	d := pan.New()
	f.Fuzz(func(t *testing.T, in []byte) {
		whole, n := d.Mask(nil, in, pan.First6Last4)
		for cut := 0; cut <= len(in); cut += 1 + len(in)/7 {
			k := pan.SplitPoint(in[:cut])
			if k == 0 {
				continue
			}
			a, na := d.Mask(nil, in[:k], pan.First6Last4)
			b, nb := d.Mask(nil, in[k:], pan.First6Last4)
			if na+nb != n || !bytes.Equal(append(a, b...), whole) {
				t.Fatalf("split at %d (of %d) changes the result: %d+%d vs %d PANs", k, len(in), na, nb, n)
			}
		}
	})
}
