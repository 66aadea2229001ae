package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/token"
)

func runCmd(t *testing.T, cmd *cobra.Command, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestKeysInitRotateList(t *testing.T) {
	cfg := auditedConfig(t) // rotate writes an audit event
	cfg.Keyring = filepath.Join(t.TempDir(), "keyring.json")
	if _, _, err := runCmd(t, newKeysCmd(&cfg), "init"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(cfg.Keyring)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("keyring file: %v, mode %v", err, st.Mode().Perm())
	}
	if _, _, err := runCmd(t, newKeysCmd(&cfg), "init"); err == nil || !strings.Contains(err.Error(), "never overwritten") {
		t.Fatalf("second init err = %v", err)
	}
	before, _ := token.Load(context.Background(), cfg.Keyring)
	tok1, _, _ := before.Tokenize([]byte("4111111111111111"))
	if _, _, err := runCmd(t, newKeysCmd(&cfg), "rotate", "--reason", "test"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCmd(t, newKeysCmd(&cfg), "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || lines[0] != "ROLE tokenizer" || !strings.HasPrefix(lines[3], "2 ") || !strings.Contains(lines[3], "*") {
		t.Fatalf("list output:\n%s", out)
	}
	after, _ := token.Load(context.Background(), cfg.Keyring)
	if after.Current() != 2 {
		t.Fatalf("current = %d", after.Current())
	}
	if again, _ := after.TokenizeVersion(1, []byte("4111111111111111")); again != tok1 {
		t.Fatal("rotation changed version 1")
	}
	raw, _ := os.ReadFile(cfg.Keyring)
	if strings.Contains(out, string(raw[:20])) || strings.Contains(out, "hmac") {
		t.Fatal("list prints key material")
	}
}

func TestDetokenizeRefusesWithoutKeyringOrReason(t *testing.T) {
	cfg := config.Default()
	cfg.Keyring = filepath.Join(t.TempDir(), "missing.json")
	_, _, err := runCmd(t, newDetokenizeCmd(&cfg), "--token", "tok_v1_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "--reason", "INC-1 dispute")
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("no keyring: err = %v", err)
	}
}

func TestDetokenizeRefusesWithoutReason(t *testing.T) {
	cfg := config.Default()
	kr, _ := token.NewKeyring()
	cfg.Keyring = filepath.Join(t.TempDir(), "k.json")
	kr.Save(cfg.Keyring)
	_, _, err := runCmd(t, newDetokenizeCmd(&cfg), "--token", "tok_v1_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "--reason", "x")
	if err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Fatalf("short reason: err = %v", err)
	}
}
