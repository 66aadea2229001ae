package token

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// grantKMS is an in-memory KMS with the grants of one role: the tokenizer's
// credentials may encrypt anything but decrypt only the token-key purpose.
type grantKMS struct {
	inner        KMS
	denyDataKeys bool
}

func (g grantKMS) Wrap(ctx context.Context, ref KeyRef, key []byte, purpose string) ([]byte, error) {
	return g.inner.Wrap(ctx, ref, key, purpose)
}

func (g grantKMS) Unwrap(ctx context.Context, ref KeyRef, w []byte, purpose string) ([]byte, error) {
	if g.denyDataKeys && purpose == dataKeyWrapContext {
		return nil, errors.New("AccessDeniedException: kms:Decrypt not granted for this encryption context")
	}
	return g.inner.Unwrap(ctx, ref, w, purpose)
}

// memKMS wraps with AES-KW under one key per KMS key id, binding the purpose
// by deriving a key per purpose.
type memKMS struct{ keys map[string][]byte }

func (m memKMS) key(ref KeyRef, purpose string) []byte {
	k := append([]byte(nil), m.keys[ref.KMSKeyID]...)
	for i := range purpose {
		k[i%len(k)] ^= purpose[i]
	}
	return k
}

func (m memKMS) Wrap(_ context.Context, ref KeyRef, key []byte, purpose string) ([]byte, error) {
	return aesKeyWrap(m.key(ref, purpose), key)
}

func (m memKMS) Unwrap(_ context.Context, ref KeyRef, w []byte, purpose string) ([]byte, error) {
	return aesKeyUnwrap(m.key(ref, purpose), w)
}

func saveLoad(t *testing.T, kr *Keyring, opts ...LoadOpt) (*Keyring, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "k.json")
	if err := kr.Save(path); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	got, err := Load(context.Background(), path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return got, raw
}

// TestKeyRoles: the tokenizer's keyring tokenizes and seals and cannot open;
// the detokenizer's opens and cannot tokenize; no key is stored in plain
// text; rotation keeps the pair in step and old records open.
func TestKeyRoles(t *testing.T) {
	ctx := context.Background()
	full, _ := NewKeyring()
	tokKR, detokKR, err := full.Split()
	if err != nil {
		t.Fatal(err)
	}
	tok, tokRaw := saveLoad(t, tokKR)
	detok, detokRaw := saveLoad(t, detokKR)
	if tok.Role() != RoleTokenizer || detok.Role() != RoleDetokenizer {
		t.Fatalf("roles %s %s", tok.Role(), detok.Role())
	}
	kv := full.versions[1]
	for name, raw := range map[string][]byte{"tokenizer": tokRaw, "detokenizer": detokRaw} {
		var f keyringFile
		json.Unmarshal(raw, &f)
		if bytes.Contains(raw, []byte(`"hmac_key"`)) || f.Versions[0].HMACKey != nil {
			t.Errorf("%s file holds a plaintext token key", name)
		}
		for _, secret := range [][]byte{kv.hmac, kv.vaultPriv} {
			if bytes.Contains(raw, secret) || strings.Contains(string(raw), jsonB64(secret)) {
				t.Errorf("%s file holds a secret in plain text", name)
			}
		}
	}
	if bytes.Contains(tokRaw, []byte("vault_private_key")) {
		t.Error("tokenizer file holds the vault private key, even wrapped")
	}
	if bytes.Contains(detokRaw, []byte("hmac_key")) {
		t.Error("detokenizer file holds the token key, even wrapped")
	}

	a, _, err := tok.Tokenize(testPANs[0])
	if err != nil {
		t.Fatal(err)
	}
	if b, _, _ := full.Tokenize(testPANs[0]); a != b {
		t.Fatal("tokenizer keyring tokenizes differently from the keyring it was split from")
	}
	if _, _, err := detok.Tokenize(testPANs[0]); !errors.Is(err, ErrNoTokenKey) {
		t.Fatalf("detokenizer tokenized: %v", err)
	}
	s, err := NewVault(tok).Seal(ctx, a, testPANs[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVault(tok).Open(ctx, a, s); !errors.Is(err, ErrSealOnly) {
		t.Fatalf("tokenizer opened a vault record: %v", err)
	}
	if got, err := NewVault(detok).Open(ctx, a, s); err != nil || !bytes.Equal(got, testPANs[0]) {
		t.Fatalf("detokenizer open: %v", err)
	}
	if tok.CanOpen(1) || !detok.CanOpen(1) {
		t.Error("CanOpen is wrong")
	}

	// Rotation adds version 2 to both; v1 records still open.
	tok2, detok2, err := RotatePair(tok, detok)
	if err != nil {
		t.Fatal(err)
	}
	a2, v, _ := tok2.Tokenize(testPANs[0])
	if v != 2 || tok2.Current() != 2 || detok2.Current() != 2 {
		t.Fatalf("rotated to v%d (tok %d, detok %d)", v, tok2.Current(), detok2.Current())
	}
	s2, err := NewVault(tok2).Seal(ctx, a2, testPANs[0])
	if err != nil {
		t.Fatal(err)
	}
	tok2, _ = saveLoad(t, tok2)
	detok2, _ = saveLoad(t, detok2)
	for _, c := range []struct {
		tok string
		s   Sealed
	}{{a, s}, {a2, s2}} {
		if got, err := NewVault(detok2).Open(ctx, c.tok, c.s); err != nil || !bytes.Equal(got, testPANs[0]) {
			t.Fatalf("open v%d after rotation: %v", c.s.KeyVersion, err)
		}
	}
	if _, err := tok2.Rotate(); err == nil {
		t.Error("a role keyring rotated alone")
	}
}

func jsonB64(b []byte) string {
	j, _ := json.Marshal(b)
	return strings.Trim(string(j), `"`)
}

// TestKeyRolesRefuseMixedFiles: a tokenizer file with a private key, a
// detokenizer file with a token key, or a v2 file with a plaintext token key
// is refused.
func TestKeyRolesRefuseMixedFiles(t *testing.T) {
	ctx := context.Background()
	full, _ := NewKeyring()
	tok, detok, _ := full.Split()
	tokRaw, _ := tok.Marshal()
	detokRaw, _ := detok.Marshal()
	var tf, df keyringFile
	json.Unmarshal(tokRaw, &tf)
	json.Unmarshal(detokRaw, &df)

	mixed := tf
	mixed.Versions = []versionFile{tf.Versions[0]}
	mixed.Versions[0].KEK = df.Versions[0].KEK
	mixed.Versions[0].HMACKeyWrapped = nil
	mixed.Versions[0].VaultPrivateKeyWrapped = df.Versions[0].VaultPrivateKeyWrapped
	mixed.Versions[0].HMACKeyWrapped, _ = aesKeyWrap(df.Versions[0].KEK, full.versions[1].hmac)
	b, _ := json.Marshal(mixed)
	if _, err := Parse(ctx, b); err == nil || !strings.Contains(err.Error(), "tokenizer keyring must not hold") {
		t.Errorf("tokenizer file with a private key: err = %v", err)
	}
	withToken := df
	withToken.Versions = []versionFile{df.Versions[0]}
	withToken.Versions[0].HMACKeyWrapped, _ = aesKeyWrap(df.Versions[0].KEK, full.versions[1].hmac)
	b, _ = json.Marshal(withToken)
	if _, err := Parse(ctx, b); err == nil || !strings.Contains(err.Error(), "must not hold token keys") {
		t.Errorf("detokenizer file with a token key: err = %v", err)
	}
	plain := tf
	plain.Versions = []versionFile{tf.Versions[0]}
	plain.Versions[0].HMACKeyWrapped, plain.Versions[0].HMACKey = nil, full.versions[1].hmac
	b, _ = json.Marshal(plain)
	if _, err := Parse(ctx, b); err == nil || !strings.Contains(err.Error(), "plaintext") {
		t.Errorf("v2 file with a plaintext token key: err = %v", err)
	}
}

// TestV1KeyringStillWorks: a v1 file (plaintext token key, local symmetric
// KEK) loads as a full keyring, opens its records, and is written back with
// the token key wrapped.
func TestV1KeyringStillWorks(t *testing.T) {
	ctx := context.Background()
	h, _ := randomKey()
	kek, _ := randomKey()
	v1 := keyringFile{Format: keyringFormatV1, Current: 1, Versions: []versionFile{{Version: 1, HMACKey: h, KEK: kek}}}
	b, _ := json.Marshal(v1)
	kr, err := Parse(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	tk, _, _ := kr.Tokenize(testPANs[0])
	s, err := NewVault(kr).Seal(ctx, tk, testPANs[0])
	if err != nil || len(s.WrappedKey) != 40 {
		t.Fatalf("v1 seal: %v", err)
	}
	back, raw := saveLoad(t, kr)
	if bytes.Contains(raw, []byte(`"hmac_key"`)) {
		t.Error("v1 keyring written back with a plaintext token key")
	}
	if got, err := NewVault(back).Open(ctx, tk, s); err != nil || !bytes.Equal(got, testPANs[0]) {
		t.Fatalf("v1 open after rewrite: %v", err)
	}
	if _, _, err := kr.Split(); err == nil {
		t.Error("split a v1 version whose KEK both seals and opens")
	}
}

// TestKeyRolesWithKMS: with KMS versions the roles are the KMS grants: the
// tokenizer may decrypt only its token key, so it seals and cannot open.
func TestKeyRolesWithKMS(t *testing.T) {
	ctx := context.Background()
	k, _ := randomKey()
	kms := memKMS{keys: map[string][]byte{"key-1": k}}
	full, _ := NewKeyring()
	tok, detok, _ := full.Split()
	tok2, detok2, err := RotatePairKMS(ctx, kms, "key-1", tok, detok)
	if err != nil {
		t.Fatal(err)
	}
	tokGrant := grantKMS{inner: kms, denyDataKeys: true}
	tokL, raw := saveLoad(t, tok2, WithKMS(tokGrant))
	if bytes.Contains(raw, tok2.versions[2].hmac) || strings.Contains(string(raw), jsonB64(tok2.versions[2].hmac)) {
		t.Error("KMS token key stored in plain text")
	}
	detokL, _ := saveLoad(t, detok2) // needs no KMS to load: it holds no token key
	a, v, err := tokL.Tokenize(testPANs[1])
	if err != nil || v != 2 {
		t.Fatalf("tokenize v%d: %v", v, err)
	}
	s, err := NewVault(tokL, VaultKMS(tokGrant)).Seal(ctx, a, testPANs[1])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVault(tokL, VaultKMS(kms)).Open(ctx, a, s); !errors.Is(err, ErrSealOnly) {
		t.Fatalf("tokenizer keyring opened: %v", err)
	}
	if _, err := tokGrant.Unwrap(ctx, KeyRef{Version: 2, KMSKeyID: "key-1"}, s.WrappedKey, dataKeyWrapContext); err == nil {
		t.Fatal("the tokenizer's KMS grant unwrapped a data key")
	}
	if got, err := NewVault(detokL, VaultKMS(kms)).Open(ctx, a, s); err != nil || !bytes.Equal(got, testPANs[1]) {
		t.Fatalf("detokenizer open via KMS: %v", err)
	}
}
