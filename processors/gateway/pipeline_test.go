package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/processors/tokenizer"
	"github.com/pcistream/pcistream/schemas"
)

// TestThroughTheTokenizer sends payments (and retries) through the gateway,
// runs the tokenizer over payments.raw, and scans everything written: the
// context ids answered are those of the tokenized events, each payment is
// tokenized once, no CVV is anywhere and PANs are only in payments.raw.
func TestThroughTheTokenizer(t *testing.T) {
	e := newEnv(t, nil)
	want := map[string]string{} // payment id -> context id answered
	for i := range 12 {
		id := fmt.Sprintf("p-%d", i)
		body := paymentJSON(id, testCards[i%len(testCards)])
		for range 2 { // every payment retried once
			r := e.post("/v1/payments", body, "Idempotency-Key", "k-"+id)
			var a acceptedBody
			if r.status != http.StatusAccepted || json.Unmarshal(r.body, &a) != nil {
				t.Fatalf("%s: %d %s", id, r.status, redact(r.body))
			}
			want[id] = a.ContextID
		}
	}
	tk, err := tokenizer.New(e.kr, token.NewVault(e.kr), e.serde, tokenizer.Topics(e.topics),
		tokenizer.Logger(slog.New(slog.DiscardHandler)), tokenizer.StateDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tk.Close() })
	loop, err := tokenizer.NewLoop(tk, e.kopts, eos.Group("gw-"+t.Name()), eos.TransactionalID("gw-tok-"+t.Name()),
		eos.Logger(slog.New(slog.DiscardHandler)), eos.SessionTimeout(6*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop.Run(ctx) }()
	deadline := time.Now().Add(60 * time.Second)
	var got []schemas.TokenizedPayment
	for len(got) < len(want) && time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		got = got[:0]
		for _, r := range e.read(e.topics.PaymentsTokenized) {
			var tp schemas.TokenizedPayment
			if err := e.serde.Decode(ctx, r.Value, &tp); err != nil {
				t.Fatal(err)
			}
			got = append(got, tp)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("tokenizer: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d tokenized events, want %d", len(got), len(want))
	}
	for _, tp := range got {
		if want[tp.PaymentID] != tp.ContextID {
			t.Fatalf("%s: tokenized context %s, gateway answered %s", tp.PaymentID, tp.ContextID, want[tp.PaymentID])
		}
	}
	if n := len(e.read(e.topics.PaymentsDLQ)); n != 0 {
		t.Fatalf("%d payments dead-lettered", n)
	}
	e.assertNoLeaks(nil)
}
