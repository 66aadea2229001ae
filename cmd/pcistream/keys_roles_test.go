package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/token"
)

// TestKeysInitWritesBothRoles: keys init writes a tokenizer keyring that
// tokenizes and seals but cannot open, and a detokenize keyring that opens;
// rotate keeps them in step; the files hold no key in plain text.
func TestKeysInitWritesBothRoles(t *testing.T) {
	ctx := context.Background()
	cfg := auditedConfig(t) // rotate writes an audit event
	dir := t.TempDir()
	cfg.Keyring = filepath.Join(dir, "keyring.json")
	dpath := filepath.Join(dir, "keyring-detokenize.json")
	if _, _, err := runCmd(t, newKeysCmd(&cfg), "init"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCmd(t, newKeysCmd(&cfg), "init", "--if-missing"); err != nil {
		t.Fatalf("init --if-missing on existing keyrings: %v", err)
	}
	if _, _, err := runCmd(t, newKeysCmd(&cfg), "init", "--detokenize-keyring", cfg.Keyring); err == nil {
		t.Fatal("init accepted one file for both roles")
	}
	for _, p := range []string{cfg.Keyring, dpath} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v", filepath.Base(p), err)
		}
		raw, _ := os.ReadFile(p)
		if bytes.Contains(raw, []byte(`"hmac_key"`)) {
			t.Errorf("%s holds a plaintext token key", filepath.Base(p))
		}
	}
	tok, err := token.Load(ctx, cfg.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCmd(t, newKeysCmd(&cfg), "rotate", "--reason", "test"); err != nil {
		t.Fatal(err)
	}
	tok2, err := token.Load(ctx, cfg.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	detok, err := token.Load(ctx, dpath)
	if err != nil {
		t.Fatal(err)
	}
	if tok2.Role() != token.RoleTokenizer || detok.Role() != token.RoleDetokenizer || tok2.Current() != 2 || detok.Current() != 2 {
		t.Fatalf("after rotate: %s v%d, %s v%d", tok2.Role(), tok2.Current(), detok.Role(), detok.Current())
	}
	pan := []byte("4111111111111111")
	for _, kr := range []*token.Keyring{tok, tok2} {
		tk, v, err := kr.Tokenize(pan)
		if err != nil {
			t.Fatal(err)
		}
		s, err := token.NewVault(kr).Seal(ctx, tk, pan)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := token.NewVault(tok2).Open(ctx, tk, s); !errors.Is(err, token.ErrSealOnly) {
			t.Errorf("v%d: the tokenizer keyring opened a vault record: %v", v, err)
		}
		if got, err := token.NewVault(detok).Open(ctx, tk, s); err != nil || !bytes.Equal(got, pan) {
			t.Errorf("v%d: the detokenize keyring does not open: %v", v, err)
		}
	}
	out, _, err := runCmd(t, newKeysCmd(&cfg), "list")
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if len(rows) != 4 || !strings.HasSuffix(rows[1], "OPEN") {
		t.Fatalf("list:\n%s", out)
	}
	for _, r := range rows[2:] {
		if f := strings.Fields(r); f[len(f)-2] != "yes" || f[len(f)-1] != "no" {
			t.Errorf("tokenizer keyring row %q: want TOKENIZE yes, OPEN no", r)
		}
	}
}
