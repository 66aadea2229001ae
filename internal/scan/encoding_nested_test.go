package scan_test

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/pan/pantest"
)

// TestFindingEncodingNested: PANs inside hex, base64, octal escapes, split
// by markup or a quoted-printable soft line break are found by a file scan,
// and each finding names the encoding that hid it.
func TestFindingEncodingNested(t *testing.T) {
	dir := t.TempDir()
	p1, p2, p3, p4, p5 := visa(t), mc(t), visa(t), mc(t), visa(t)
	octal := func(p string) string {
		var b strings.Builder
		for i := 0; i < len(p); i++ {
			fmt.Fprintf(&b, `\%03o`, p[i])
		}
		return b.String()
	}
	lines := []string{
		"SELECT * FROM t WHERE pan = 0x" + hex.EncodeToString([]byte(p1)),
		"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("shop:"+p2)),
		"printf $'" + octal(p3) + "'",
		`"id","pan1","pan2","pan3","pan4"` + "\n" + `"7","` + pantest.Group(p4, `","`) + `"`,
		"card " + p5[:10] + "=\r\n" + p5[10:] + " exp",
	}
	writeFile(t, filepath.Join(dir, "nested.log"), []byte(strings.Join(lines, "\n")+"\n"))
	c, _, err := scanAll(t, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{last4(p1): "hex-ascii", last4(p2): "base64", last4(p3): "octal-escape",
		last4(p4): "separators+markup", last4(p5): "quoted-printable"}
	if len(c.fs) != len(want) {
		t.Fatalf("%d findings, want %d", len(c.fs), len(want))
	}
	for _, f := range c.fs {
		if want[f.Last4] != f.Encoding {
			t.Errorf("finding ending %s: encoding %q, want %q", f.Last4, f.Encoding, want[f.Last4])
		}
	}
}
