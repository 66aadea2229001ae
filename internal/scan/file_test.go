package scan_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/pcistream/pcistream/internal/scan"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func scanAll(t *testing.T, targets []string, opts ...scan.Opt) (*collector, scan.Summary, error) {
	t.Helper()
	ts, err := scan.ParseTargets(targets)
	if err != nil {
		t.Fatalf("parse targets: %v", err)
	}
	c := &collector{}
	sum, err := scan.New(det, opts...).Scan(context.Background(), ts, c.add)
	return c, sum, err
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	p1, p2, p3, p4, p5 := visa(t), mc(t), amex(t), visa(t), mc(t)
	writeFile(t, filepath.Join(dir, "app.log"), []byte("start\norder 12345 paid with "+p1+" ok\nend\n"))
	// Grouped PAN, two on one line, and a JSON line.
	g := p2[:4] + " " + p2[4:8] + " " + p2[8:12] + " " + p2[12:]
	writeFile(t, filepath.Join(dir, "sub", "deep", "x.txt"), []byte("a\nb\n{\"pan\":\""+p3+"\",\"other\":\""+g+"\"}\n"))
	// gzip, both with and without a .gz name.
	writeFile(t, filepath.Join(dir, "old.log.gz"), gz(t, []byte("l1\nl2\nthird: "+p4+"\n")))
	writeFile(t, filepath.Join(dir, "rotated.1"), gz(t, []byte(p5+"\n")))
	// Clean files: look-alikes that are not PANs.
	writeFile(t, filepath.Join(dir, "clean.log"), []byte("order 1234567890123 ts 2026-01-02T15:04:05Z uuid 123e4567-e89b-12d3-a456-426614174000 tok_v1_abcdefghijklmnopqrstuvwxyzabcdef\n"))
	writeFile(t, filepath.Join(dir, "empty"), nil)

	c, sum, err := scanAll(t, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	// Through a symlink to the directory: same findings under the link's name.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	cl, _, err := scanAll(t, []string{link})
	if err != nil || len(cl.fs) != 5 {
		t.Errorf("symlinked directory: err %v, %d findings, want 5", err, len(cl.fs))
	}
	want := []string{
		filepath.Join(dir, "app.log") + ":2|" + last4(p1),
		filepath.Join(dir, "sub", "deep", "x.txt") + ":3|" + last4(p3),
		filepath.Join(dir, "sub", "deep", "x.txt") + ":3|" + last4(p2),
		filepath.Join(dir, "old.log.gz") + ":3|" + last4(p4),
		filepath.Join(dir, "rotated.1") + ":1|" + last4(p5),
	}
	assertKeys(t, c.keys(), want)
	if sum.Items != 6 {
		t.Errorf("items = %d, want 6 files", sum.Items)
	}
	if sum.Findings != 5 || sum.ByKind[scan.KindPAN] != 5 {
		t.Errorf("summary findings = %d (%v), want 5", sum.Findings, sum.ByKind)
	}
	// Fingerprints are distinct and stable across runs.
	c2, _, _ := scanAll(t, []string{dir})
	fp := map[string]bool{}
	for _, f := range c.fs {
		if fp[f.Fingerprint] {
			t.Errorf("duplicate fingerprint at %s", f.Location)
		}
		fp[f.Fingerprint] = true
		if strings.Contains(f.Fingerprint, f.Last4) && len(f.Fingerprint) < 32 {
			t.Errorf("fingerprint looks wrong: %q", f.Fingerprint)
		}
	}
	for _, f := range c2.fs {
		if !fp[f.Fingerprint] {
			t.Errorf("fingerprint of %s changed between runs", f.Location)
		}
	}
}

// TestFileLongLine plants PANs around the window boundaries of a line longer
// than the read buffer.
func TestFileLongLine(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	var want []string
	path := filepath.Join(dir, "long.txt")
	filler := strings.Repeat("x", 1000) + " "
	for b.Len() < 3<<20 {
		b.WriteString(filler)
		if b.Len()%7 == 0 || len(want) < 5 {
			p := visa(t)
			b.WriteString(p + " ")
			want = append(want, path+":1|"+last4(p))
		}
	}
	// PANs straddling each 1 MiB boundary (offsets chosen around it).
	data := b.Bytes()
	for _, boundary := range []int{1 << 20, 2 << 20} {
		for _, off := range []int{-70, -40, -10, -3, 0, 5} {
			p := mc(t)
			at := boundary + off
			// overwrite a filler area: find the previous space-free region
			seg := []byte(" " + p + " ")
			if bytes.ContainsAny(data[at:at+len(seg)], "0123456789") {
				continue
			}
			copy(data[at:], seg)
			want = append(want, path+":1|"+last4(p))
		}
	}
	data = append(data, "\nline two: "...)
	p := amex(t)
	data = append(data, p+"\n"...)
	want = append(want, path+":2|"+last4(p))
	writeFile(t, path, data)

	c, _, err := scanAll(t, []string{path})
	if err != nil {
		t.Fatal(err)
	}
	assertKeys(t, c.keys(), want)
}

func TestFileErrors(t *testing.T) {
	_, sum, err := scanAll(t, []string{"/nonexistent/path/for/scan"})
	if err == nil {
		t.Fatal("want an error for a missing path")
	}
	if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "check the path") {
		t.Errorf("error should be one line saying what to fix: %q", err)
	}
	if len(sum.Targets) != 1 || sum.Targets[0].Error == "" {
		t.Errorf("summary should record the failed target: %+v", sum.Targets)
	}
}

// TestFileNameWithPAN: a PAN in a path is masked in the location.
func TestFileNameWithPAN(t *testing.T) {
	dir := t.TempDir()
	p, inside := visa(t), mc(t)
	writeFile(t, filepath.Join(dir, "card-"+p+".txt"), []byte(inside+"\n"))
	c, _, err := scanAll(t, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.fs) != 1 {
		t.Fatalf("got %d findings, want 1", len(c.fs))
	}
	f := c.fs[0]
	for what, s := range map[string]string{"location": f.Location, "path": f.File.Path, "message": f.Message, "target": f.Target} {
		assertNoPAN(t, what, []byte(s), p, inside)
	}
	if !strings.Contains(f.Location, last4(p)) {
		t.Errorf("masked path should keep last 4 digits: %q", f.Location)
	}
}

// TestFileLineNumbers checks line numbers across read-chunk boundaries, with
// gzip and without, and two PANs with the same last 4 on one line.
func TestFileLineNumbers(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	var want []string
	p := visa(t)
	for i := 1; i <= 60000; i++ {
		switch {
		case i%997 == 0:
			fmt.Fprintf(&b, "line %d card %s end\n", i, p)
			want = append(want, fmt.Sprintf("LINE:%d|%s", i, last4(p)))
		case i == 30001:
			fmt.Fprintf(&b, "twice %s and %s\n", p, p)
			want = append(want, fmt.Sprintf("LINE:%d|%s", i, last4(p)), fmt.Sprintf("LINE:%d|%s", i, last4(p)))
		default:
			fmt.Fprintf(&b, "line %d nothing to see here, order ord-%d amount 12.50\n", i, i)
		}
	}
	for name, body := range map[string][]byte{"plain.log": b.Bytes(), "packed.log.gz": gz(t, b.Bytes())} {
		path := filepath.Join(dir, name)
		writeFile(t, path, body)
		c, _, err := scanAll(t, []string{path})
		if err != nil {
			t.Fatal(err)
		}
		w := make([]string, len(want))
		for i, k := range want {
			w[i] = strings.Replace(k, "LINE", path, 1)
		}
		assertKeys(t, c.keys(), w)
		fps := map[string]bool{}
		for _, f := range c.fs {
			fps[f.Fingerprint] = true
		}
		if len(fps) != len(want) {
			t.Errorf("%s: %d distinct fingerprints for %d findings", name, len(fps), len(want))
		}
	}
}

// TestFileSplitsWherePANsDoNot: the scan carries the end of each 1 MiB
// buffer into the next at a point where no card number can be split (the
// detector's pan.SplitPoint): a PAN wrapped across the buffer's last line
// break is found (the scan used to cut at that line break), and so is one
// at the end of a base64 token longer than the buffer.
func TestFileSplitsWherePANsDoNot(t *testing.T) {
	dir := t.TempDir()
	var want []string
	wrapped := filepath.Join(dir, "wrapped.txt")
	var b bytes.Buffer
	for b.Len() < 1<<20-200 {
		b.WriteString("filler line with words only\\n"[:28] + "\n")
	}
	p := visa(t)
	// The PAN's line break is the last one in the first buffer: the rest
	// of its line runs past the buffer's end.
	b.WriteString("card " + p[:8] + "\n" + p[8:] + " " + strings.Repeat("y", 400) + "\n")
	writeFile(t, wrapped, b.Bytes())
	want = append(want, wrapped+":"+strconv.Itoa(bytes.Count(b.Bytes(), []byte("\n"))-1)+"|"+last4(p))

	blob := filepath.Join(dir, "blob.txt")
	b.Reset()
	b.WriteString("blob=")
	q := mc(t)
	plain := strings.Repeat("no digits here, ", 65520) + "card " + q + " end"
	enc := base64.StdEncoding.EncodeToString([]byte(plain))
	b.WriteString(enc + "\n")
	writeFile(t, blob, b.Bytes())
	want = append(want, blob+":1|"+last4(q))

	c, _, err := scanAll(t, []string{wrapped, blob})
	if err != nil {
		t.Fatal(err)
	}
	assertKeys(t, c.keys(), want)
}
