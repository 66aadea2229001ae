package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/pan/pantest"
)

func runMask(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := newMaskCmd()
	var out, errb bytes.Buffer
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), errb.String(), err
}

func TestMaskCmdStdin(t *testing.T) {
	in := `{"card":"4111 1111 1111 1111","ts":"2026-11-23T11:28:50Z"}` + "\namex 378282246310005 ok\n"
	out, stderr, err := runMask(t, in, "--stats")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"card":"4111 11** **** 1111","ts":"2026-11-23T11:28:50Z"}` + "\namex ***********0005 ok\n"
	if out != want {
		t.Errorf("got %q", pantest.Redact(out))
	}
	if !strings.Contains(stderr, "2 PANs masked") {
		t.Errorf("stats: %q", stderr)
	}
	out, _, err = runMask(t, in, "--policy", "full")
	if err != nil || !strings.Contains(out, `"**** **** **** ****"`) {
		t.Errorf("full: %v %q", err, pantest.Redact(out))
	}
	if _, _, err := runMask(t, in, "--policy", "first4"); err == nil || !strings.Contains(err.Error(), "first6last4") {
		t.Errorf("bad policy error: %v", err)
	}
}

func TestMaskCmdFiles(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.log")
	b := filepath.Join(dir, "b.log")
	os.WriteFile(a, []byte("pan=5555555555554444\n"), 0o600)
	// A line longer than --max-buffer is cut at word ends ("xyz "), not
	// between letters: a cut inside a base64 token would change its
	// decoding.
	os.WriteFile(b, []byte(strings.Repeat("xyz ", 1250)+" 4111111111111111 "+strings.Repeat("yyy ", 1250)+"\n"), 0o600)
	out, stderr, err := runMask(t, "stdin 4111111111111111\n", a, "-", b, filepath.Join(dir, "missing.log"), "--max-buffer", "1024")
	if err == nil || !strings.Contains(stderr, "missing.log: no such file") {
		t.Errorf("missing file: err %v stderr %q", err, stderr)
	}
	if pan.New().ContainsString(out) {
		t.Fatalf("PAN left in output: %s", pantest.Redact(out))
	}
	if !strings.HasPrefix(out, "pan=555555******4444\nstdin 411111******1111\n") || !strings.Contains(out, " 411111******1111 ") {
		t.Errorf("output: %s", pantest.Redact(out[:80]))
	}
}
