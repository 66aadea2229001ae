package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/chain"
)

// runMain runs the pcistream command line and returns its exit code.
func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestVerifyExitCodes(t *testing.T) {
	dir, pub := offlineChain(t)
	empty := t.TempDir()
	cases := []struct {
		name string
		args []string
		code int
		want string // in stdout or stderr
	}{
		{"verifies", []string{"verify", "--dir", dir, "--no-kafka", "--public-key", pub, "-q"}, 0, "result: OK"},
		{"empty trail refused", []string{"verify", "--dir", empty, "--no-kafka", "--public-key", pub, "-q"}, 1, "--allow-empty"},
		{"empty trail allowed", []string{"verify", "--dir", empty, "--no-kafka", "--public-key", pub, "-q", "--allow-empty"}, 0, "EMPTY"},
		{"no trusted key", []string{"verify", "--dir", dir, "--no-kafka", "-q"}, 2, "--public-key"},
		{"bucket keys only when insecure", []string{"verify", "--dir", dir, "--no-kafka", "-q", "--insecure-trust-bucket-keys"}, 0, "INSECURE"},
		{"unreadable key", []string{"verify", "--dir", dir, "--no-kafka", "-q", "--public-key", filepath.Join(empty, "nope.pem")}, 2, "--public-key"},
		{"bad flag", []string{"verify", "--no-such-flag"}, 2, "unknown flag"},
		{"bad format", []string{"verify", "--dir", dir, "--no-kafka", "--public-key", pub, "--format", "xml"}, 2, "--format"},
		{"unreachable S3", []string{"verify", "--no-kafka", "--public-key", pub, "-q", "--s3-endpoint", "http://127.0.0.1:1"}, 2, "verify:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runMain(t, tc.args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s\n%s", code, tc.code, tc.want, out, errOut)
			}
		})
	}
}

// TestVerifyCheckpointFileCatchesTruncation removes the newest batch, its
// manifest and the only checkpoint from an offline copy: the rest verifies
// on its own, but not against a checkpoint saved beforehand.
func TestVerifyCheckpointFileCatchesTruncation(t *testing.T) {
	dir, pub := offlineChain(t)
	saved := filepath.Join(t.TempDir(), "anchor.json")
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(chain.CheckpointKey(0))))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(saved, b, 0o644)
	for _, key := range []string{chain.ManifestKey(0, 2), chain.ObjectKey(0, 8, 11), chain.CheckpointKey(0)} {
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(key))); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, _ := runMain(t, "verify", "--dir", dir, "--no-kafka", "--public-key", pub, "-q"); code != 0 {
		t.Fatalf("the truncated copy is consistent on its own: exit %d\n%s", code, out)
	}
	code, out, _ := runMain(t, "verify", "--dir", dir, "--no-kafka", "--public-key", pub, "-q", "--checkpoint", saved)
	if code != 1 || !strings.Contains(out, "anchor") || !strings.Contains(out, "truncated") {
		t.Fatalf("truncation not caught by --checkpoint: exit %d\n%s", code, out)
	}
}
