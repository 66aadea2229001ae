package state

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A key committed after another writer opened a transaction on the same
// partition sits above the partition's last stable offset until that
// transaction ends. The catch-up barrier must still include it: catchUp
// waits for the open transaction to be decided, and then the key is there. A barrier at the last stable offset would return at once
// without it.
func TestCatchUpIncludesCommitsAboveAnOpenTransaction(t *testing.T) {
	opts := cluster(t, 1)
	ms := time.Now().UnixMilli()
	store := openStore(t, t.TempDir())
	defer store.Close()
	f, stop := runFollower(t, opts, store, FollowerOpts{Window: time.Hour, FilterBytes: 1 << 20})
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Writer X opens a transaction and leaves it open.
	x := openTxn(t, opts, "open-x", rec(0, "open", ms))
	// Writer W commits a key after it.
	txnProduce(t, opts, true, rec(0, "above", ms))

	short, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := catchUp(short, f, "above")
	scancel()
	if err == nil {
		if _, ok, _ := f.Get([]byte("above"), time.UnixMilli(ms)); !ok {
			t.Fatalf("catchUp returned while a committed key of the partition is not in the store")
		}
		t.Fatalf("catchUp returned before the open transaction was decided")
	}
	// X aborts: the barrier passes, the committed key is there, the
	// aborted one is not.
	aborted := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		aborted <- x.EndTransaction(ctx, kgo.TryAbort)
	}()
	err = catchUp(ctx, f, "above")
	// The abort's marker may be read before EndTransaction returns: wait
	// for it before X is closed.
	if aerr := <-aborted; aerr != nil {
		t.Fatalf("abort: %v", aerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := f.Get([]byte("above"), time.UnixMilli(ms)); !ok {
		t.Fatalf("a key committed before catchUp is missing after it")
	}
	if _, ok, _ := f.Get([]byte("open"), time.UnixMilli(ms)); ok {
		t.Fatalf("an aborted key is visible")
	}
}
