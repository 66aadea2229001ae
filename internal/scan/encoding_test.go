package scan_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/pan/pantest"
	"github.com/pcistream/pcistream/internal/scan"
)

// TestFindingEncoding: a file scan finds PANs hidden by escapes, other
// scripts and separators, and each finding says which encoding hid it, in
// the table, JSON and SARIF outputs.
func TestFindingEncoding(t *testing.T) {
	dir := t.TempDir()
	p1, p2, p3, p4 := visa(t), mc(t), visa(t), mc(t)
	esc := func(p string, f func(byte) string) string {
		var b strings.Builder
		for i := 0; i < len(p); i++ {
			b.WriteString(f(p[i]))
		}
		return b.String()
	}
	lines := []string{
		`{"msg":"card ` + esc(p1, func(c byte) string { return `\u003` + string(c) }) + `"}`,
		"GET /pay?card=" + esc(p2, func(c byte) string { return "%3" + string(c) }) + " HTTP/1.1",
		"<td>" + esc(p3, func(c byte) string {
			return "&#" + string(rune('0'+(c-'0'+48)/10)) + string(rune('0'+(c-'0'+48)%10)) + ";"
		}) + "</td>",
		"chat: " + pantest.Group(p4, "\t"),
	}
	writeFile(t, filepath.Join(dir, "mixed.log"), []byte(strings.Join(lines, "\n")+"\n"))
	c, _, err := scanAll(t, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{last4(p1): "json-escape", last4(p2): "percent", last4(p3): "html-entity", last4(p4): "separators"}
	if len(c.fs) != len(want) {
		t.Fatalf("%d findings, want %d", len(c.fs), len(want))
	}
	for _, f := range c.fs {
		if want[f.Last4] != f.Encoding {
			t.Errorf("finding ending %s: encoding %q, want %q", f.Last4, f.Encoding, want[f.Last4])
		}
	}
	var tbl, js, sarif bytes.Buffer
	sum := scan.Summary{}
	if err := scan.WriteTable(&tbl, c.fs, sum); err != nil || !strings.Contains(tbl.String(), "json-escape") {
		t.Errorf("table lacks the encoding: %v", err)
	}
	if err := scan.WriteSARIF(&sarif, c.fs, "test"); err != nil || !strings.Contains(sarif.String(), `"encoding": "percent"`) && !strings.Contains(sarif.String(), `"encoding":"percent"`) {
		t.Errorf("SARIF lacks the encoding: %v", err)
	}
	if err := json.NewEncoder(&js).Encode(c.fs); err != nil || !strings.Contains(js.String(), `"encoding":"html-entity"`) {
		t.Errorf("JSON lacks the encoding: %v", err)
	}
	for _, out := range []string{tbl.String(), js.String(), sarif.String()} {
		for _, p := range []string{p1, p2, p3, p4} {
			if pantest.Leaks(out, p) {
				t.Fatal("scan output holds a full PAN")
			}
		}
	}
}
