package tokenizer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/schemas"
)

// testToken is a syntactically valid token of version v.
func testToken(v, i int) string {
	body := []byte(strings.Repeat(string(token.Alphabet[0]), 32))
	for j := len(body) - 1; i > 0; j-- {
		body[j] = token.Alphabet[i%len(token.Alphabet)]
		i /= len(token.Alphabet)
	}
	return fmt.Sprintf("%s%d_%s", token.Prefix, v, body)
}

// Retiring a key version deletes its vault entries (tombstones on the
// topic, applied by every index) and leaves other versions alone; a lookup
// of a retired version's token says it was retired.
func TestRetireKeyVersion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cl, err := kgo.NewClient(e.opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var v1, v2 []string
	for i := range 40 {
		for _, v := range []int{1, 2} {
			tok := testToken(v, i)
			b, err := e.serde.Encode(&schemas.VaultEntry{Token: tok, KeyVersion: int32(v), KEKID: "k", WrappedKey: []byte{1},
				Nonce: []byte{2}, Ciphertext: []byte{3}, Algorithm: "AES-256-GCM", CreatedAt: 1})
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: e.topics.Vault, Key: []byte(tok), Value: b}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if v == 1 {
				v1 = append(v1, tok)
			} else {
				v2 = append(v2, tok)
			}
		}
	}
	ix, err := OpenVaultIndex(ctx, t.TempDir(), e.opts, e.topics.Vault, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if _, err := ix.Lookup(ctx, e.serde, v1[3]); err != nil {
		t.Fatalf("v1 token before retirement: %v", err)
	}
	if re, err := ix.Retired(ctx, e.serde, 1); err != nil || re != nil {
		t.Fatalf("version 1 retired before Retire: %v %v", re, err)
	}
	at := time.UnixMilli(1_800_000_000_000)
	n, err := ix.Retire(ctx, e.serde, 1, at)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(v1) {
		t.Fatalf("retire deleted %d entries, want %d", n, len(v1))
	}
	d := NewDetokenizer(nil, e.serde, e.topics, e.opts)
	d.UseIndex(ix)
	for _, tok := range v1 {
		if _, err := ix.Lookup(ctx, e.serde, tok); !errors.Is(err, ErrNotInVault) {
			t.Fatalf("retired entry still in the index: %v", err)
		}
		var re *RetiredError
		_, err := d.lookup(ctx, tok)
		if !errors.As(err, &re) || re.Version != 1 || !re.At.Equal(at) {
			t.Fatalf("detokenize lookup of a retired token: %v, want RetiredError for version 1", err)
		}
		if errCode(err) != "key_version_retired" || !strings.Contains(err.Error(), "was retired") {
			t.Fatal("retired error not told apart")
		}
	}
	for _, tok := range v2 {
		if _, err := d.lookup(ctx, tok); err != nil {
			t.Fatalf("v2 token after retiring v1: %v", err)
		}
	}
	// On the topic: one tombstone per v1 entry, nothing for v2; a fresh
	// index built from it has no v1 entry.
	tombs := map[string]bool{}
	err = kafkax.ReadStable(ctx, e.opts, e.topics.Vault, func(r *kgo.Record) error {
		if r.Value == nil {
			tombs[string(r.Key)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(tombs) != len(v1) {
		t.Fatalf("%d tombstones on the vault topic, want %d", len(tombs), len(v1))
	}
	for _, tok := range v2 {
		if tombs[tok] {
			t.Fatal("tombstone for a v2 token")
		}
	}
	fresh, err := OpenVaultIndex(ctx, "", e.opts, e.topics.Vault, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if _, err := fresh.Lookup(ctx, e.serde, v1[0]); !errors.Is(err, ErrNotInVault) {
		t.Fatalf("fresh index: v1 entry %v", err)
	}
	if re, _ := fresh.Retired(ctx, e.serde, 1); re == nil {
		t.Fatal("fresh index does not know version 1 is retired")
	}
}
