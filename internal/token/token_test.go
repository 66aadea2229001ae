package token

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcistream/pcistream/internal/pan"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 3394 section 4.3 and 4.6 (256-bit KEK).
func TestAESKeyWrapRFC3394(t *testing.T) {
	kek := mustHex(t, "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	for _, tc := range []struct{ key, want string }{
		{"00112233445566778899AABBCCDDEEFF", "64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7"},
		{"00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
			"28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"},
	} {
		key, want := mustHex(t, tc.key), mustHex(t, tc.want)
		got, err := aesKeyWrap(kek, key)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("wrap = %X, want %X", got, want)
		}
		back, err := aesKeyUnwrap(kek, got)
		if err != nil || !bytes.Equal(back, key) {
			t.Fatalf("unwrap = %X, %v", back, err)
		}
		got[3] ^= 1
		if _, err := aesKeyUnwrap(kek, got); !errors.Is(err, errKeyUnwrap) {
			t.Fatalf("tampered unwrap err = %v", err)
		}
	}
}

var testPANs = [][]byte{
	[]byte("4111111111111111"),
	[]byte("5555555555554444"),
	[]byte("378282246310005"),
	[]byte("6011111111111117"),
}

func TestTokenFormatAndDeterminism(t *testing.T) {
	kr, err := NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, p := range testPANs {
		tok, v, err := kr.Tokenize(p)
		if err != nil {
			t.Fatal(err)
		}
		if v != 1 {
			t.Fatalf("version = %d, want 1", v)
		}
		if !strings.HasPrefix(tok, "tok_v1_") || len(tok) != len("tok_v1_")+32 {
			t.Fatalf("token %q has the wrong shape", tok)
		}
		for _, c := range tok[len("tok_v1_"):] {
			if c >= '0' && c <= '9' {
				t.Fatalf("token %q has a digit in its body", tok)
			}
		}
		if strings.Contains(tok, string(p[len(p)-4:])) {
			t.Fatalf("token contains PAN digits")
		}
		again, _, _ := kr.Tokenize(p)
		if again != tok {
			t.Fatalf("tokenize is not deterministic")
		}
		if seen[tok] {
			t.Fatalf("two PANs share a token")
		}
		seen[tok] = true
		if gv, err := ParseToken(tok); err != nil || gv != 1 {
			t.Fatalf("ParseToken(%q) = %d, %v", tok, gv, err)
		}
	}
	// Another keyring (another secret) gives other tokens: the token is keyed.
	kr2, _ := NewKeyring()
	t1, _, _ := kr.Tokenize(testPANs[0])
	t2, _, _ := kr2.Tokenize(testPANs[0])
	if t1 == t2 {
		t.Fatal("tokens do not depend on the key")
	}
}

func TestParseTokenRejects(t *testing.T) {
	for _, s := range []string{
		"", "tok_v1_", "tok_v0_" + strings.Repeat("b", 32), "tok_v01_" + strings.Repeat("b", 32),
		"tok_v1_" + strings.Repeat("b", 31), "tok_v1_" + strings.Repeat("a", 32), "tok_v1_" + strings.Repeat("b", 31) + "1",
		"tok_vx_" + strings.Repeat("b", 32), "4111111111111111", "tok_v99999999999_" + strings.Repeat("b", 32),
	} {
		if _, err := ParseToken(s); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("ParseToken(%q) err = %v, want ErrInvalidToken", s, err)
		}
	}
}

func TestKeyringFileRoundTripRotateAndMode(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "keyring.json")
	kr, err := NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.Save(path); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("saved mode %o, want 600", st.Mode().Perm())
	}
	loaded, err := Load(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := kr.Tokenize(testPANs[0])
	b, _, _ := loaded.Tokenize(testPANs[0])
	if a != b {
		t.Fatal("loaded keyring tokenizes differently")
	}

	rot, err := loaded.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if rot.Current() != 2 || len(rot.Versions()) != 2 || loaded.Current() != 1 {
		t.Fatalf("rotate: current %d, versions %d, original current %d", rot.Current(), len(rot.Versions()), loaded.Current())
	}
	c, v, _ := rot.Tokenize(testPANs[0])
	if v != 2 || !strings.HasPrefix(c, "tok_v2_") || c[len("tok_v2_"):] == a[len("tok_v1_"):] {
		t.Fatalf("rotated token %q (v%d) not a fresh v2 token", c, v)
	}
	if old, _ := rot.TokenizeVersion(1, testPANs[0]); old != a {
		t.Fatal("version 1 token changed after rotation")
	}

	// A keyring others can read, or group members can write, is refused
	// with a fix in the message; group read (Kubernetes 0440) is accepted.
	for _, mode := range []os.FileMode{0o644, 0o660, 0o604, 0o450} {
		os.Chmod(path, mode)
		if _, err := Load(ctx, path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("mode %04o: err = %v", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o400, 0o440, 0o640} {
		os.Chmod(path, mode)
		if _, err := Load(ctx, path); err != nil {
			t.Fatalf("mode %04o: %v", mode, err)
		}
	}
	os.Chmod(path, 0o600)
	if _, err := Load(ctx, filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "keys init") {
		t.Fatalf("missing file err = %v", err)
	}

	// Inline keyring (PCISTREAM_KEYRING holding JSON).
	raw, _ := rot.Marshal()
	env, err := Open(ctx, " "+string(raw))
	if err != nil {
		t.Fatal(err)
	}
	if env.Current() != 2 {
		t.Fatalf("env keyring current = %d", env.Current())
	}
	if _, err := Open(ctx, ""); !errors.Is(err, ErrNoKeyring) {
		t.Fatalf("no keyring err = %v", err)
	}
}

func TestParseErrorsDoNotLeakSecrets(t *testing.T) {
	kr, _ := NewKeyring()
	raw, _ := kr.Marshal()
	broken := bytes.Replace(raw, []byte(`"current": 1`), []byte(`"current": 7`), 1)
	_, err := Parse(context.Background(), broken)
	if err == nil {
		t.Fatal("want error for missing current version")
	}
	bad := append([]byte(nil), raw[:len(raw)-3]...)
	_, err2 := Parse(context.Background(), bad)
	if err2 == nil {
		t.Fatal("want error for truncated JSON")
	}
	for _, e := range []error{err, err2} {
		if strings.Contains(e.Error(), "hmac_key\"") || strings.Contains(e.Error(), "==") {
			t.Fatalf("parse error may quote key material: %v", e)
		}
	}
}

func TestVaultSealOpen(t *testing.T) {
	ctx := context.Background()
	kr, _ := NewKeyring()
	v := NewVault(kr)
	tok, _, _ := kr.Tokenize(testPANs[0])
	s, err := v.Seal(ctx, tok, testPANs[0])
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyVersion != 1 || len(s.Nonce) != 12 || len(s.WrappedKey) != 80 { // HPKE: X25519 share, key, tag
		t.Fatalf("sealed shape: v%d nonce %d wrapped %d", s.KeyVersion, len(s.Nonce), len(s.WrappedKey))
	}
	if bytes.Contains(s.Ciphertext, testPANs[0]) {
		t.Fatal("ciphertext holds the PAN")
	}
	got, err := v.Open(ctx, tok, s)
	if err != nil || !bytes.Equal(got, testPANs[0]) {
		t.Fatalf("open: equal=%v err=%v", bytes.Equal(got, testPANs[0]), err)
	}
	// X25519 versions reuse a data key by default (an X25519 exchange per
	// record is costly); DataKeyReuse(1, 0) gives each record its own.
	s2, _ := v.Seal(ctx, tok, testPANs[0])
	if !bytes.Equal(s.WrappedKey, s2.WrappedKey) || bytes.Equal(s.Nonce, s2.Nonce) {
		t.Fatal("default vault did not reuse the data key with a fresh nonce")
	}
	one := NewVault(kr, DataKeyReuse(1, 0))
	o1, _ := one.Seal(ctx, tok, testPANs[0])
	o2, _ := one.Seal(ctx, tok, testPANs[0])
	if bytes.Equal(o1.WrappedKey, o2.WrappedKey) {
		t.Fatal("DataKeyReuse(1) reused a data key")
	}
	// AAD binds the record to its token: moving it to another token fails.
	other, _, _ := kr.Tokenize(testPANs[1])
	if _, err := v.Open(ctx, other, s); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("open under other token err = %v", err)
	}
	// Tampering fails.
	bad := s
	bad.Ciphertext = append([]byte(nil), s.Ciphertext...)
	bad.Ciphertext[0] ^= 1
	if _, err := v.Open(ctx, tok, bad); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered open err = %v", err)
	}
	// Another keyring cannot open it.
	kr2, _ := NewKeyring()
	if _, err := NewVault(kr2).Open(ctx, tok, s); err == nil {
		t.Fatal("foreign keyring opened the record")
	}

	// Rotation: old records still open, new ones use v2.
	rot, _ := kr.Rotate()
	rv := NewVault(rot)
	if got, err := rv.Open(ctx, tok, s); err != nil || !bytes.Equal(got, testPANs[0]) {
		t.Fatalf("v1 record after rotation: err=%v", err)
	}
	tok2, _, _ := rot.Tokenize(testPANs[0])
	s3, err := rv.Seal(ctx, tok2, testPANs[0])
	if err != nil || s3.KeyVersion != 2 {
		t.Fatalf("seal after rotation: v%d err=%v", s3.KeyVersion, err)
	}
	// A v1-only keyring cannot open a v2 record.
	if _, err := v.Open(ctx, tok2, s3); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("open v2 with v1 keyring err = %v", err)
	}
}

func TestVaultDataKeyReuse(t *testing.T) {
	ctx := context.Background()
	kr, _ := NewKeyring()
	now := time.Unix(1000, 0)
	v := NewVault(kr, DataKeyReuse(3, time.Minute))
	v.cfg.nowFunc = func() time.Time { return now }
	tok, _, _ := kr.Tokenize(testPANs[0])
	var wrapped [][]byte
	for i := 0; i < 4; i++ {
		s, err := v.Seal(ctx, tok, testPANs[0])
		if err != nil {
			t.Fatal(err)
		}
		if got, err := v.Open(ctx, tok, s); err != nil || !bytes.Equal(got, testPANs[0]) {
			t.Fatalf("open %d: %v", i, err)
		}
		wrapped = append(wrapped, s.WrappedKey)
	}
	if !bytes.Equal(wrapped[0], wrapped[2]) || bytes.Equal(wrapped[2], wrapped[3]) {
		t.Fatal("data key not reused exactly 3 times")
	}
	now = now.Add(2 * time.Minute)
	s, _ := v.Seal(ctx, tok, testPANs[0])
	if bytes.Equal(s.WrappedKey, wrapped[3]) {
		t.Fatal("data key outlived maxAge")
	}
}

// The PAN detector must never flag a token, alone or embedded in text/JSON.
func TestDetectorNeverFlagsTokens(t *testing.T) {
	det := pan.New()
	kr, _ := NewKeyring()
	for v := 0; v < 3; v++ {
		for i := 0; i < 5000; i++ {
			// Digit strings that are valid-looking PANs and arbitrary numbers.
			p := []byte(fmt.Sprintf("4%015d", i*7919))
			tok, _, err := kr.Tokenize(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{tok, `{"token":"` + tok + `"}`, "token=" + tok + " amount=1999"} {
				if det.ContainsString(s) {
					t.Fatalf("detector flags token %q", tok)
				}
			}
		}
		kr, _ = kr.Rotate()
	}
}

// TestTokenizePooledMACMatchesFresh checks that reused HMAC states give the
// token a fresh HMAC gives, across versions and concurrent callers.
func TestTokenizePooledMACMatchesFresh(t *testing.T) {
	k, err := NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	if k, err = k.Rotate(); err != nil {
		t.Fatal(err)
	}
	pans := [][]byte{[]byte("4111111111111111"), []byte("5555555555554444"), []byte("378282246310005")}
	want := map[string]string{}
	for _, v := range []uint32{1, 2} {
		for _, p := range pans {
			kv, err := k.version(v)
			if err != nil {
				t.Fatal(err)
			}
			m := hmac.New(sha256.New, kv.hmac)
			m.Write(hmacDomain)
			m.Write(p)
			want[fmt.Sprint(v, string(p))] = render(v, m.Sum(nil))
		}
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				v, p := uint32(1+i%2), pans[i%len(pans)]
				got, err := k.TokenizeVersion(v, p)
				if err != nil || got != want[fmt.Sprint(v, string(p))] {
					t.Errorf("version %d: token differs from a fresh HMAC's (err %v)", v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
