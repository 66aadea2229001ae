package pan_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/pan/pantest"
)

// Published test card numbers of the networks (no real accounts).
var knownPANs = []struct {
	digits string
	net    pan.Network
}{
	{"4111111111111111", pan.Visa},
	{"4012888888881881", pan.Visa},
	{"4222222222222", pan.Visa},
	{"4000056655665556", pan.Visa},
	{"5555555555554444", pan.Mastercard},
	{"5105105105105100", pan.Mastercard},
	{"2223003122003222", pan.Mastercard},
	{"378282246310005", pan.Amex},
	{"371449635398431", pan.Amex},
	{"6011111111111117", pan.Discover},
	{"6011000990139424", pan.Discover},
	{"3530111333300000", pan.JCB},
	{"3566002020360505", pan.JCB},
	{"30569309025904", pan.Diners},
	{"38520000023237", pan.Diners},
	{"36227206271667", pan.Diners},
	{"6200000000000005", pan.UnionPay},
	{"6759649826438453", pan.Maestro},
	{"6304000000000000", pan.Maestro},
	{"2200000000000004", pan.Mir},
	{"6521999999999998", pan.Discover}, // RuPay co-brand in Discover 65
	{"6070000000000002", pan.RuPay},
	{"9792000000000003", pan.Troy},
}

// show prints text safely: every digit but the last four is redacted.
func show(s string) string { return pantest.Redact(s) }

func TestKnownPANs(t *testing.T) {
	d := pan.New()
	for _, k := range knownPANs {
		net, ok := pan.Identify([]byte(k.digits))
		if !ok || net != k.net {
			t.Errorf("Identify(%s) = %v, %v; want %v", show(k.digits), net, ok, k.net)
			continue
		}
		ms := d.Find(nil, []byte("card "+k.digits+" ok"))
		if len(ms) != 1 || ms[0].Network != k.net || ms[0].Start != 5 || ms[0].End != 5+len(k.digits) ||
			string(ms[0].Last4[:]) != k.digits[len(k.digits)-4:] || ms[0].Digits != len(k.digits) {
			t.Errorf("Find(%s) = %+v", show(k.digits), ms)
		}
	}
}

func TestNetworkStrings(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range pan.Networks() {
		s := n.String()
		if s == "" || s == "unknown" || s != strings.ToLower(s) || seen[s] {
			t.Errorf("bad or duplicate name %q for %d", s, n)
		}
		seen[s] = true
	}
	if pan.Unknown.String() != "unknown" || pan.Network(200).String() != "unknown" {
		t.Error("unknown network names")
	}
}

func TestIINRanges(t *testing.T) {
	cases := []struct {
		prefix string
		length int
		want   pan.Network
	}{
		{"4", 16, pan.Visa}, {"4", 13, pan.Visa}, {"4", 19, pan.Visa}, {"4", 15, pan.Unknown},
		{"51", 16, pan.Mastercard}, {"55", 16, pan.Mastercard}, {"56", 16, pan.Maestro},
		{"2221", 16, pan.Mastercard}, {"2720", 16, pan.Mastercard}, {"2721", 16, pan.Unknown},
		{"2220", 16, pan.Unknown}, {"2200", 16, pan.Mir}, {"2204", 19, pan.Mir}, {"2205", 16, pan.Unknown},
		{"34", 15, pan.Amex}, {"37", 15, pan.Amex}, {"37", 16, pan.Unknown}, {"35", 15, pan.Unknown},
		{"6011", 16, pan.Discover}, {"644", 16, pan.Discover}, {"649", 19, pan.Discover}, {"65", 16, pan.Discover},
		{"622126", 16, pan.Discover}, {"622925", 16, pan.Discover}, {"622125", 16, pan.UnionPay},
		{"622926", 16, pan.UnionPay}, {"62", 19, pan.UnionPay},
		{"3528", 16, pan.JCB}, {"3589", 19, pan.JCB}, {"3527", 16, pan.Unknown},
		{"300", 14, pan.Diners}, {"305", 16, pan.Diners}, {"306", 14, pan.Unknown}, {"36", 14, pan.Diners},
		{"38", 16, pan.Diners}, {"39", 14, pan.Diners},
		{"50", 12, pan.Maestro}, {"58", 19, pan.Maestro}, {"6304", 12, pan.Maestro}, {"6759", 18, pan.Maestro},
		{"676770", 16, pan.Maestro}, {"676774", 12, pan.Maestro}, {"676775", 16, pan.Unknown},
		{"508", 16, pan.RuPay}, {"508", 12, pan.Maestro}, {"60", 16, pan.RuPay}, {"60", 19, pan.Unknown},
		{"81", 16, pan.RuPay}, {"82", 16, pan.RuPay}, {"83", 16, pan.Unknown},
		{"9792", 16, pan.Troy}, {"506099", 16, pan.Verve},
		{"636368", 16, pan.Elo}, {"636297", 16, pan.Elo}, {"606282", 19, pan.Hipercard}, {"384140", 16, pan.Hipercard},
		{"81", 17, pan.UnionPay}, {"8171", 19, pan.UnionPay}, {"8172", 17, pan.Unknown}, {"8600", 16, pan.UzCard},
		{"9860", 16, pan.Humo}, {"9112", 16, pan.BelKart}, {"9360", 18, pan.GPN}, {"31", 19, pan.TUnion},
		{"31", 16, pan.Unknown}, {"636", 17, pan.InterPayment}, {"639", 16, pan.InstaPayment}, {"639", 17, pan.Unknown},
		{"9682", 16, pan.Mada}, {"6703", 17, pan.Maestro}, {"2131", 15, pan.JCB}, {"2131", 16, pan.Unknown},
		{"1", 15, pan.Unknown}, {"0", 16, pan.Unknown}, {"7", 16, pan.Unknown},
	}
	for _, c := range cases {
		// Build a Luhn-valid number with the prefix and length.
		d := []byte(c.prefix + strings.Repeat("0", c.length-len(c.prefix)-1))
		d = append(d, pantest.CheckDigit(d))
		got, ok := pan.Identify(d)
		if got != c.want || ok != (c.want != pan.Unknown) {
			t.Errorf("prefix %s len %d: got %v %v, want %v", c.prefix, c.length, got, ok, c.want)
		}
	}
}

func TestLuhn(t *testing.T) {
	for _, c := range []struct {
		s  string
		ok bool
	}{
		{"79927398713", true}, {"79927398710", false}, {"0", true}, {"", false}, {"4111x", false},
		{"4111111111111111", true}, {"4111111111111112", false},
	} {
		if pan.Luhn([]byte(c.s)) != c.ok {
			t.Errorf("Luhn(%s) != %v", show(c.s), c.ok)
		}
	}
	if _, ok := pan.Identify([]byte("41111111111111a1")); ok {
		t.Error("Identify accepted a non-digit")
	}
	if _, ok := pan.Identify([]byte("41111111111")); ok {
		t.Error("Identify accepted 11 digits")
	}
}

// TestFormats covers every network in every style and context (table, one
// PAN each).
func TestFormats(t *testing.T) {
	d := pan.New()
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range pan.Networks() {
		for _, l := range pantest.Lengths(n) {
			digits := pantest.Generate(r, n, l)
			for _, st := range pantest.Styles() {
				p := pantest.Format(digits, st)
				for _, c := range pantest.Contexts() {
					if !c.Fits(st) {
						continue
					}
					text, off := pantest.Embed(p, c)
					ms := d.Find(nil, []byte(text))
					if len(ms) != 1 || ms[0].Start != off || ms[0].End != off+len(p) || ms[0].Network != n || ms[0].Digits != l {
						t.Errorf("%v len %d %v in %v: got %d matches %+v in %q", n, l, st, c, len(ms), ms, show(text))
					}
				}
			}
		}
	}
}

// TestNegatives lists look-alikes that must not be reported.
func TestNegatives(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	visa := string(pantest.Generate(r, pan.Visa, 16))
	maestro12 := string(pantest.Generate(r, pan.Maestro, 12))
	bad := []byte(visa)
	bad[15] = '0' + (bad[15]-'0'+1)%10
	cases := map[string][]string{
		"luhn-invalid": {string(bad), "4111 1111 1111 1112", "5555-5555-5555-4445"},
		"longer-number": {
			"1" + visa + "2", visa + "123", "00" + visa, visa + visa,
			"123456789012345678901234567890",
		},
		"hex-string": {
			"9f86d0" + visa + "a1b2", visa + "ab12", "12cd" + visa, "0x" + visa, "0X" + visa,
		},
		"timestamp": {
			"1732361330123", "1732361330123456", "1732361330123456789", "2026-11-23T11:28:50.123Z",
			"2026-11-23 11:28:50,123", "20261123112850123", "2026-11-23T11:28:50.123456789+01:00", "1732361330.123456",
		},
		"phone": {
			"+44 20 7946 0958", "+1 415 555 0123", "+4915123456789", "+86 138 0013 8000", "0044 20 7946 0958",
			"(415) 555-0123", "+56 9 1234 5678", "+562123456789", "+5612345678901", "tel:+44-20-7946-0958",
		},
		"uuid": {
			"550e8400-e29b-41d4-a716-446655440000", "12345678-1234-1234-1234-123456789012",
			"3f2b8c1a-9d4e-4b7a-a1c3-" + maestro12, "3f2b8c1a-9d4e-4b7a-a1cb-" + maestro12,
		},
		"iban": {
			"DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR76 3000 6000 0112 3456 7890 189",
			"NL91ABNA0417164300", "FR7630006000011234567890189", "GB29 NWBK 6016 1331 9268 19",
		},
		"version": {"1.2.3.4", "v4.111.1111.1111", "10.4111111111111111", "0." + visa, "192.168.100.200", "222.100.123.200:4432"},
		"hex-id": {
			"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		},
		"token":  {"tok_v1_abcdefghijklmnopqrstuvwxyzABCDEF", "tok_v12_QWERTYUIOPASDFGHJKLZXCVBNMqwerty"},
		"masked": {"411111******1111", "************1111", "4111 11** **** 1111", "5555-55**-****-4444"},
		"short":  {"4111 1111 111", "41111111111", "4111-1111", "41 11 11 11 11 11 11 11"},
	}
	d := pan.New()
	for kind, texts := range cases {
		for _, s := range texts {
			for _, c := range []string{s, "x: " + s + " ;", `{"v":"` + s + `"}`} {
				if ms := d.Find(nil, []byte(c)); len(ms) != 0 {
					t.Errorf("%s: false positive in %q: %+v", kind, show(c), ms)
				}
			}
		}
	}
}

// TestWindows: a PAN among other numbers in a space-separated run is found.
func TestWindows(t *testing.T) {
	d := pan.New()
	r := rand.New(rand.NewPCG(5, 6))
	v := pantest.Format(pantest.Generate(r, pan.Visa, 16), pantest.Spaces)
	a := pantest.Format(pantest.Generate(r, pan.Amex, 15), pantest.Spaces)
	for _, text := range []string{
		"qty 2 " + v + " 1 items",
		"12 34 " + v,
		v + " 2026",
		v + " " + a,
		"order 1832 " + v + " 2026-11-23",
		"ref 1 " + v + " " + a + " 7",
	} {
		ms := d.Find(nil, []byte(text))
		want := strings.Count(text, v) + strings.Count(text, a)
		if len(ms) != want {
			t.Errorf("%q: %d matches, want %d", show(text), len(ms), want)
		}
		for _, m := range ms {
			got := text[m.Start:m.End]
			if got != v && got != a {
				t.Errorf("%q: match %q is not the PAN", show(text), show(got))
			}
		}
	}
}

func TestMaskPolicies(t *testing.T) {
	d := pan.New()
	cases := []struct {
		in   string
		p    pan.Policy
		want string
	}{
		{"card 4111111111111111 ok", pan.First6Last4, "card 411111******1111 ok"},
		{"card 4111111111111111 ok", pan.Last4, "card ************1111 ok"},
		{"card 4111111111111111 ok", pan.Full, "card **************** ok"},
		{"4111 1111 1111 1111", pan.First6Last4, "4111 11** **** 1111"},
		{"4111-1111-1111-1111", pan.Last4, "****-****-****-1111"},
		{"3782 822463 10005", pan.First6Last4, "**** ****** *0005"}, // 15 digits: last four only
		{"x=4111%201111%201111%201111&y", pan.First6Last4, "x=4111%2011**%20****%201111&y"},
		{"4222222222222", pan.First6Last4, "*********2222"}, // 13 digits: last four only
		{"a 4111111111111111 b 5555555555554444", pan.First6Last4, "a 411111******1111 b 555555******4444"},
		{"no pan here 12345", pan.Full, "no pan here 12345"},
	}
	for _, c := range cases {
		out, n := d.Mask(nil, []byte(c.in), c.p)
		if string(out) != c.want {
			t.Errorf("Mask(%q, %v) = %q, want %q", show(c.in), c.p, show(string(out)), show(c.want))
		}
		if len(out) != len(c.in) {
			t.Errorf("length changed")
		}
		if want := strings.Count(c.want, "*") > 0; (n > 0) != want {
			t.Errorf("Mask(%q) n = %d", show(c.in), n)
		}
		s, n2 := d.MaskString(c.in, c.p)
		if s != c.want || n2 != n {
			t.Errorf("MaskString(%q) = %q, %d", show(c.in), show(s), n2)
		}
	}
	// dst prefix is kept.
	out, _ := d.Mask([]byte("pre:"), []byte("4111111111111111"), pan.Last4)
	if string(out) != "pre:************1111" {
		t.Errorf("dst prefix: %q", show(string(out)))
	}
	out, n := d.Mask([]byte("pre:"), []byte("clean"), pan.Last4)
	if string(out) != "pre:clean" || n != 0 {
		t.Errorf("clean with dst: %q", out)
	}
}

func TestParsePolicy(t *testing.T) {
	for _, p := range []pan.Policy{pan.First6Last4, pan.Last4, pan.Full} {
		got, err := pan.ParsePolicy(p.String())
		if err != nil || got != p {
			t.Errorf("round trip %v: %v %v", p, got, err)
		}
	}
	if _, err := pan.ParsePolicy("first4"); err == nil || !strings.Contains(err.Error(), "first6last4") {
		t.Errorf("bad policy error: %v", err)
	}
	var p pan.Policy
	if err := p.Set("last4"); err != nil || p != pan.Last4 || p.Type() != "policy" {
		t.Error("Set")
	}
}

func TestOnlyNetworks(t *testing.T) {
	d := pan.New(pan.OnlyNetworks(pan.Amex))
	if d.ContainsString("4111111111111111") {
		t.Error("visa reported with OnlyNetworks(Amex)")
	}
	if !d.ContainsString("378282246310005") {
		t.Error("amex missed")
	}
}

// TestCorpusRecall: every generated PAN of every network, length, style and
// context in a large mixed corpus is found, with nothing else reported, and
// the masked corpus has no PAN left.
func TestCorpusRecall(t *testing.T) {
	d := pan.New()
	r := rand.New(rand.NewPCG(7, 8))
	var buf bytes.Buffer
	type want struct{ start, end int }
	var wants []want
	noise := []string{
		"2026-11-23T11:28:50.123Z INFO svc=checkout req=550e8400-e29b-41d4-a716-446655440000 latency_ms=31 status=200\n",
		"ts=1732361330123 level=warn msg=\"retry\" attempt=3 ip=10.0.12.7 port=8443 ver=1.2.3.4\n",
		`{"user":1832,"phone":"+44 20 7946 0958","iban":"DE89 3704 0044 0532 0130 00","amount":12.50}` + "\n",
	}
	per := map[pan.Network]int{}
	for round := 0; round < 30; round++ {
		for _, n := range pan.Networks() {
			for _, l := range pantest.Lengths(n) {
				digits := pantest.Generate(r, n, l)
				st := pantest.Styles()[r.IntN(len(pantest.Styles()))]
				c := pantest.Contexts()[r.IntN(len(pantest.Contexts()))]
				if !c.Fits(st) {
					st = pantest.Contiguous
				}
				text, off := pantest.Embed(pantest.Format(digits, st), c)
				buf.WriteString(noise[r.IntN(len(noise))])
				base := buf.Len()
				buf.WriteString(text)
				buf.WriteByte('\n')
				wants = append(wants, want{base + off, base + off + len(pantest.Format(digits, st))})
				per[n]++
			}
		}
	}
	in := buf.Bytes()
	ms := d.Find(nil, in)
	if len(ms) != len(wants) {
		t.Fatalf("found %d PANs, want %d", len(ms), len(wants))
	}
	for i, m := range ms {
		if m.Start != wants[i].start || m.End != wants[i].end {
			t.Fatalf("match %d at %d-%d, want %d-%d: %q", i, m.Start, m.End, wants[i].start, wants[i].end, show(string(in[wants[i].start:wants[i].end])))
		}
	}
	for _, p := range []pan.Policy{pan.First6Last4, pan.Last4, pan.Full} {
		out, n := d.Mask(nil, in, p)
		if n != len(wants) || len(out) != len(in) {
			t.Fatalf("%v: masked %d, len %d vs %d", p, n, len(out), len(in))
		}
		if left := d.Find(nil, out); len(left) != 0 {
			t.Fatalf("%v: %d PANs left after masking", p, len(left))
		}
	}
	t.Logf("recall 100%% on %d PANs (%d networks)", len(wants), len(per))
}

func TestNoAllocOnCleanInput(t *testing.T) {
	d := pan.New()
	clean := []byte(strings.Repeat("2026-11-23T11:28:50.123Z INFO svc=checkout req=550e8400-e29b-41d4-a716-446655440000 latency_ms=31 ts=1732361330123 ip=10.0.12.7 phone=+44 20 7946 0958\n", 20))
	dst := make([]byte, 0, len(clean))
	ms := make([]pan.Match, 0, 4)
	allocs := testing.AllocsPerRun(100, func() {
		if d.Contains(clean) {
			t.Fatal("clean input has a PAN")
		}
		ms = d.Find(ms[:0], clean)
		dst, _ = d.Mask(dst[:0], clean, pan.First6Last4)
		_, _ = d.MaskString(string(clean[:200]), pan.Full) // conversion outside is not ours; see below
	})
	// The string conversion in the closure allocates once; the detector nothing.
	if allocs > 1 {
		t.Errorf("%.1f allocations per run on clean input", allocs)
	}
	s := string(clean)
	allocs = testing.AllocsPerRun(100, func() {
		if _, n := d.MaskString(s, pan.Full); n != 0 {
			t.Fatal("clean")
		}
		_ = d.ContainsString(s)
		_ = d.FindString(ms[:0], s)
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per run on clean string", allocs)
	}
}

func ExampleDetector_Mask() {
	d := pan.New()
	out, n := d.Mask(nil, []byte(`{"card":"4111 1111 1111 1111","exp":"12/27"}`), pan.First6Last4)
	fmt.Println(string(out), n)
	// Output: {"card":"4111 11** **** 1111","exp":"12/27"} 1
}

// TestEscapes: PANs right after URL and JSON escapes are found; the escape
// itself is never part of the match.
func TestEscapes(t *testing.T) {
	d := pan.New()
	for _, c := range []struct {
		text  string
		start int
	}{
		{"q=card%3D4111111111111111&x=1", 9},
		{"q=%204111111111111111", 5},
		{`"a\n4111111111111111"`, 4},
		{`"a\t4111 1111 1111 1111"`, 4},
		{"p=4111%201111%201111%201111", 2},
		{"p=4111+1111+1111+1111&", 2},
	} {
		ms := d.FindString(nil, c.text)
		if len(ms) != 1 || ms[0].Start != c.start {
			t.Errorf("%q: %+v, want one match at %d", show(c.text), ms, c.start)
		}
	}
}
