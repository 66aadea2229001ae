package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pcistream/pcistream/internal/config"
)

// runScanCmd runs `scan ARGS...` and returns stdout, stderr and the exit code
// main would use.
func runScanCmd(t *testing.T, args ...string) (string, string, int, error) {
	t.Helper()
	cfg := config.Default()
	cmd := newScanCmd(&cfg)
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	code := 0
	if err != nil {
		var ec interface{ ExitCode() int }
		if !errors.As(err, &ec) {
			t.Fatalf("scan error without an exit code: %v", err)
		}
		code = ec.ExitCode()
	}
	return out.String(), errOut.String(), code, err
}

func TestScanCommandExitCodes(t *testing.T) {
	dir := t.TempDir()
	// A Luhn-valid Visa test number, built so the source holds no PAN literal.
	p := "4111" + strings.Repeat("1", 12)
	if err := os.WriteFile(filepath.Join(dir, "leak.log"), []byte("paid "+p+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	clean := filepath.Join(dir, "clean")
	os.Mkdir(clean, 0o755)
	os.WriteFile(filepath.Join(clean, "ok.log"), []byte("nothing to see\n"), 0o644)

	if out, _, code, err := runScanCmd(t, "-q", clean); code != 0 || err != nil || !strings.Contains(out, "no findings") {
		t.Errorf("clean: exit %d err %v out %q", code, err, out)
	}
	out, errOut, code, err := runScanCmd(t, "-q", dir)
	if code != 1 {
		t.Errorf("findings: exit %d err %v, want 1", code, err)
	}
	if s, ok := err.(interface{ Silent() bool }); !ok || !s.Silent() {
		t.Errorf("findings error should be silent (the table already says it): %v", err)
	}
	if strings.Contains(out+errOut, p) || !strings.Contains(out, "1111") {
		t.Errorf("output must show the last 4 and never the PAN (len %d)", len(out))
	}
	_, _, code, err = runScanCmd(t, "kafka://127.0.0.1:9092")
	if code != 2 || err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "missing topic") {
		t.Errorf("bad target: exit %d err %v, want 2 and a one-line message", code, err)
	}
	_, _, code, _ = runScanCmd(t)
	if code != 2 {
		t.Errorf("no targets: exit %d, want 2", code)
	}
	out, _, code, _ = runScanCmd(t, "-q", "--format", "sarif", dir)
	var doc struct {
		Version string `json:"version"`
		Runs    []struct {
			Results []json.RawMessage `json:"results"`
		} `json:"runs"`
	}
	if code != 1 || json.Unmarshal([]byte(out), &doc) != nil || doc.Version != "2.1.0" || len(doc.Runs) != 1 || len(doc.Runs[0].Results) != 1 {
		t.Errorf("sarif: exit %d, version %q", code, doc.Version)
	}
	// Baseline round trip through the flags.
	bl := filepath.Join(t.TempDir(), "baseline.json")
	if _, _, code, err := runScanCmd(t, "-q", "--write-baseline", bl, dir); code != 0 || err != nil {
		t.Fatalf("write-baseline: exit %d err %v", code, err)
	}
	if _, _, code, err := runScanCmd(t, "-q", "--baseline", bl, dir); code != 0 || err != nil {
		t.Errorf("with baseline: exit %d err %v, want 0", code, err)
	}
}
