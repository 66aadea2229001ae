package tokenizer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/schemas"
)

// A vault entry committed after another writer opened a transaction on the
// same partition lies above the last stable offset until that transaction
// ends (on real Kafka, every entry does for a moment after its commit is
// answered, until the markers are written). A lookup of its token must not
// answer "not in the vault": it reads on to the high watermark and finds it
// once the open transaction is decided.
func TestVaultLookupFindsEntryAboveOpenTransaction(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ix, err := OpenVaultIndex(ctx, t.TempDir(), e.opts, e.topics.Vault, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	tok, other := testToken(1, 7), testToken(1, 8)
	part := ix.Partition(tok)
	entry := func(tk string) *kgo.Record {
		b, err := e.serde.Encode(&schemas.VaultEntry{Token: tk, KeyVersion: 1, KEKID: "k", WrappedKey: []byte{1},
			Nonce: []byte{2}, Ciphertext: []byte{3}, Algorithm: "AES-256-GCM", CreatedAt: 1})
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Topic: e.topics.Vault, Partition: part, Key: []byte(tk), Value: b}
	}
	txn := func(id string) *kgo.Client {
		return devstacktest.OpenTxn(t, e.opts, devstacktest.Name(t, id), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	// Writer X opens a transaction and leaves it open; writer W commits
	// tok's entry after it.
	x := txn("open")
	if err := x.ProduceSync(ctx, entry(other)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	w := txn("commit")
	if err := w.ProduceSync(ctx, entry(tok)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := w.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		if err := x.EndTransaction(ctx, kgo.TryAbort); err != nil {
			t.Errorf("abort: %v", err)
		}
	}()
	rec, err := ix.Lookup(ctx, e.serde, tok)
	if errors.Is(err, ErrNotInVault) {
		t.Fatal("a token whose vault entry committed before the lookup is reported not in the vault")
	}
	if err != nil || rec.Entry.Token != tok {
		t.Fatalf("lookup: %v", err)
	}
	if _, err := ix.Lookup(ctx, e.serde, other); !errors.Is(err, ErrNotInVault) {
		t.Fatalf("the aborted entry: %v, want ErrNotInVault", err)
	}
}
