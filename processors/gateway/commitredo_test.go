package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/processors/gateway"
)

// The committer produces a transaction's records while it checks their
// Idempotency-Keys. When the check finds a key committed elsewhere, that
// request is answered from the first entry and the transaction is aborted
// and written again without it: the other requests of the batch land
// exactly once, and nothing of the found key is ever committed.
//
// The batch is forced: a first request (blocker) waits in its check for a
// transaction writer X left open on its partition (movedBehindOpenTxn),
// and the retry of a key another writer committed above X's records,
// together with new keys, queue behind it and form the next transaction.
func TestFoundKeyAbortsAndRewritesTheRest(t *testing.T) {
	a := newEnv(t, nil)
	b := a.sibling(t.Name() + "-b")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := a.topics.GatewayIdempotency

	body, first, x := movedBehindOpenTxn(ctx, t, a)
	part := partitionOf(t, a.kopts, topic, "moved")
	blocker := ""
	for i := 0; blocker == "" && i < 1000; i++ {
		if k := fmt.Sprintf("blocker-%d", i); partitionOf(t, a.kopts, topic, k) == part {
			blocker = k
		}
	}
	if blocker == "" {
		t.Fatal("no blocker key on the partition of the moved key")
	}

	// The blocker occupies B's producer until X is decided.
	var wg sync.WaitGroup
	answers := map[string]response{}
	var mu sync.Mutex
	send := func(key, body string) {
		defer wg.Done()
		r := b.post("/v1/payments", body, "Idempotency-Key", key)
		mu.Lock()
		answers[key] = r
		mu.Unlock()
	}
	wg.Add(1)
	go send(blocker, paymentJSON("p-"+blocker, testCards[0]))
	time.Sleep(300 * time.Millisecond)
	news := []string{"new-0", "new-1", "new-2", "new-3"}
	wg.Add(1 + len(news))
	go send("moved", body)
	for i, k := range news {
		go send(k, paymentJSON("p-"+k, testCards[i%len(testCards)]))
	}
	time.Sleep(700 * time.Millisecond)
	if err := x.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatalf("abort X: %v", err)
	}
	wg.Wait()

	if r := answers["moved"]; r.status != http.StatusAccepted || string(r.body) != string(first.body) || r.header.Get(gateway.ReplayedHeader) != "true" {
		t.Fatalf("retry of the moved key on B: %d replayed=%q %s", r.status, r.header.Get(gateway.ReplayedHeader), redact(r.body))
	}
	for _, k := range append([]string{blocker}, news...) {
		if r := answers[k]; r.status != http.StatusAccepted || r.header.Get(gateway.ReplayedHeader) != "" {
			t.Fatalf("%s on B: %d replayed=%q %s", k, r.status, r.header.Get(gateway.ReplayedHeader), redact(r.body))
		}
		if n := countKey(a, a.topics.PaymentsRaw, k); n != 1 {
			t.Fatalf("payments.raw holds %d committed records of %s, want 1", n, k)
		}
		if n := countKey(a, topic, k); n != 1 {
			t.Fatalf("the idempotency topic holds %d committed entries of %s, want 1", n, k)
		}
	}
	if n := countKey(a, a.topics.PaymentsRaw, "moved"); n != 0 {
		t.Fatalf("payments.raw holds %d committed records of the replayed key, want 0", n)
	}
	if n := countKey(a, topic, "moved"); n != 1 {
		t.Fatalf("the idempotency topic holds %d committed entries of the replayed key, want 1", n)
	}
	// The path under test ran: the moved key's payment was produced in a
	// transaction (then aborted), and at least one new key was written
	// twice, once in that transaction and once in its rewrite.
	written := map[string]int{}
	if err := kafkax.ReadStable(ctx, a.kopts, a.topics.PaymentsRaw, func(r *kgo.Record) error {
		written[string(r.Key)]++
		return nil
	}, kafkax.Uncommitted()); err != nil {
		t.Fatal(err)
	}
	rewritten := 0
	for _, k := range news {
		if written[k] == 2 {
			rewritten++
		}
	}
	if written["moved"] != 1 || rewritten == 0 {
		t.Fatalf("the found key's transaction was not aborted and rewritten: moved written %d times, %d of %d new keys twice",
			written["moved"], rewritten, len(news))
	}
	if n := b.counter("pcistream_gateway_key_check_aborts_total"); n < 1 {
		t.Fatalf("pcistream_gateway_key_check_aborts_total = %v on B, want at least 1", n)
	}
	a.assertNoLeaks(nil)
	b.assertNoLeaks(nil)
}

// counter is the value of an unlabelled counter in e's metrics.
func (e *env) counter(name string) float64 {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.reg.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				e.t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	e.t.Fatalf("no %s in the metrics", name)
	return 0
}
