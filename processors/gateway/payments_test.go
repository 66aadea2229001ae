package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pcistream/pcistream/schemas"
)

type acceptedBody struct {
	Status    string `json:"status"`
	PaymentID string `json:"payment_id"`
	ContextID string `json:"context_id"`
	Brand     string `json:"brand"`
	Last4     string `json:"last4"`
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

func TestValidationTable(t *testing.T) {
	e := newEnv(t, nil)
	visa := testCards[0]
	cases := []struct {
		name   string
		body   string
		hdr    []string
		status int
		code   string
	}{
		{"valid", paymentJSON("p-ok", visa), nil, 202, ""},
		{"valid amex spaced", paymentJSON("p-amex", "3782 822463 10005", `cvv="1234"`), nil, 202, ""},
		{"unknown field", paymentJSON("p1", visa, `color="red"`), nil, 400, "schema_violation"},
		{"unknown field named like a PAN", paymentJSON("p1", visa, visa+`=1`), nil, 400, "schema_violation"},
		{"trailing data", paymentJSON("p1", visa) + "{}", nil, 400, "malformed_json"},
		{"not json", "pan=" + visa, nil, 400, "malformed_json"},
		{"empty body", "", nil, 400, "malformed_json"},
		{"amount as string", paymentJSON("p1", visa, `amount_minor="12"`), nil, 400, "schema_violation"},
		{"PAN as a number in a number field", paymentJSON("p1", visa, "expiry_month="+visa+"0000"), nil, 400, "schema_violation"},
		{"fractional amount", paymentJSON("p1", visa, `amount_minor=12.5`), nil, 400, "schema_violation"},
		{"missing pan", paymentJSON("p1", visa, `pan=-`), nil, 400, "schema_violation"},
		{"missing payment id", paymentJSON("p1", visa, `payment_id=-`), nil, 400, "schema_violation"},
		{"missing expiry", paymentJSON("p1", visa, `expiry_year=-`), nil, 400, "schema_violation"},
		{"missing amount", paymentJSON("p1", visa, `amount_minor=-`), nil, 400, "schema_violation"},
		{"missing merchant", paymentJSON("p1", visa, `merchant_id=-`), nil, 400, "schema_violation"},
		{"bad payment id chars", paymentJSON("p 1", visa), nil, 400, "schema_violation"},
		{"PAN as payment id", paymentJSON(visa, visa), nil, 400, "card_data_in_field"},
		{"PAN in metadata", paymentJSON("p1", visa, `metadata={"note":"card `+visa+`"}`), nil, 400, "card_data_in_field"},
		{"PAN in name", paymentJSON("p1", visa, `cardholder_name="`+visa+`"`), nil, 400, "card_data_in_field"},
		{"PAN as idempotency key", paymentJSON("p1", visa), []string{"Idempotency-Key", visa}, 400, "card_data_in_field"},
		{"letters in PAN", paymentJSON("p1", "4111x11111111111"), nil, 422, "invalid_pan"},
		{"short PAN", paymentJSON("p1", "41111111111"), nil, 422, "invalid_pan"},
		{"Luhn", paymentJSON("p1", "4111111111111112"), nil, 422, "luhn_failed"},
		{"unknown network", paymentJSON("p1", "9999999999999995"), nil, 422, "unknown_network"},
		{"month 13", paymentJSON("p1", visa, `expiry_month=13`), nil, 422, "invalid_expiry"},
		{"expired", paymentJSON("p1", visa, `expiry_month=1`, `expiry_year=2020`), nil, 422, "expired_card"},
		{"zero amount", paymentJSON("p1", visa, `amount_minor=0`), nil, 422, "invalid_amount"},
		{"negative amount", paymentJSON("p1", visa, `amount_minor=-5`), nil, 422, "invalid_amount"},
		{"lower-case currency", paymentJSON("p1", visa, `currency="eur"`), nil, 422, "invalid_currency"},
		{"unknown currency", paymentJSON("p1", visa, `currency="XXY"`), nil, 422, "invalid_currency"},
		{"short CVV", paymentJSON("p1", visa, `cvv="12"`), nil, 422, "invalid_cvv"},
		{"event type", paymentJSON("p1", visa, `event_type="VOID"`), nil, 422, "invalid_event_type"},
		{"refund without parent", paymentJSON("p1", visa, `event_type="REFUND"`), nil, 422, "missing_parent"},
		{"refund with parent", paymentJSON("p-refund", visa, `event_type="REFUND"`, `parent_payment_id="p-ok"`), nil, 202, ""},
		{"too large", paymentJSON("p1", visa, `metadata={"x":"`+strings.Repeat("a", 20000)+`"}`), nil, 413, "body_too_large"},
		{"wrong content type", paymentJSON("p1", visa), []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.post("/v1/payments", c.body, c.hdr...)
			if r.status != c.status {
				t.Fatalf("status %d, want %d (body %s)", r.status, c.status, redact(r.body))
			}
			if c.code == "" {
				var a acceptedBody
				if err := json.Unmarshal(r.body, &a); err != nil || !strings.HasPrefix(a.ContextID, "ctx_") || len(a.Last4) != 4 || a.Brand == "" {
					t.Fatalf("202 body %s", redact(r.body))
				}
				return
			}
			var eb errorBody
			if err := json.Unmarshal(r.body, &eb); err != nil || eb.Error.Code != c.code {
				t.Fatalf("error %s, want code %s", redact(r.body), c.code)
			}
		})
	}
	// Only the three valid payments reached Kafka.
	if n := len(e.read(e.topics.PaymentsRaw)); n != 3 {
		t.Fatalf("payments.raw holds %d records, want 3", n)
	}
	e.assertNoLeaks(nil)
}

func TestIdempotentRetryAnd409(t *testing.T) {
	e := newEnv(t, nil)
	body := paymentJSON("p-1", testCards[1])
	first := e.post("/v1/payments", body, "Idempotency-Key", "key-1")
	if first.status != http.StatusAccepted {
		t.Fatalf("first: %d %s", first.status, redact(first.body))
	}
	// Sequential and concurrent retries get the first answer.
	retry := e.post("/v1/payments", body, "Idempotency-Key", "key-1")
	if retry.status != http.StatusAccepted || string(retry.body) != string(first.body) || retry.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %q %s", retry.status, retry.header.Get("Idempotent-Replayed"), redact(retry.body))
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.post("/v1/payments", body, "Idempotency-Key", "key-1")
			if r.status != http.StatusAccepted || string(r.body) != string(first.body) {
				t.Errorf("concurrent retry: %d %s", r.status, redact(r.body))
			}
		}()
	}
	// Concurrent first requests of a new key: one is written, all agree.
	fresh := paymentJSON("p-2", testCards[2])
	bodies := make([]string, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.post("/v1/payments", fresh, "Idempotency-Key", "key-2")
			if r.status != http.StatusAccepted {
				t.Errorf("concurrent first: %d %s", r.status, redact(r.body))
			}
			bodies[i] = string(r.body)
		}()
	}
	wg.Wait()
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Fatalf("concurrent first requests got different answers")
		}
	}
	// The same key with another body is 409, whatever differs; a
	// different CVV alone is the same request (the CVV is never kept, not
	// even as a hash).
	for _, changed := range []string{
		paymentJSON("p-1", testCards[1], `amount_minor=2000`),
		paymentJSON("p-1", testCards[0]),
		paymentJSON("p-1", testCards[1], `metadata={"order":"o-2"}`),
	} {
		r := e.post("/v1/payments", changed, "Idempotency-Key", "key-1")
		var eb errorBody
		json.Unmarshal(r.body, &eb) //nolint:errcheck
		if r.status != http.StatusConflict || eb.Error.Code != "idempotency_key_reused" {
			t.Fatalf("changed body: %d %s", r.status, redact(r.body))
		}
	}
	if r := e.post("/v1/payments", paymentJSON("p-1", testCards[1], `cvv="123"`), "Idempotency-Key", "key-1"); r.status != http.StatusAccepted {
		t.Fatalf("other CVV only: %d", r.status)
	}
	// Without a header the payment id is the key, as in the tokenizer.
	for range 2 {
		if r := e.post("/v1/payments", paymentJSON("p-3", testCards[3])); r.status != http.StatusAccepted {
			t.Fatalf("no header: %d %s", r.status, redact(r.body))
		}
	}

	raw := e.read(e.topics.PaymentsRaw)
	keys := map[string]int{}
	for _, r := range raw {
		keys[string(r.Key)]++
		var p schemas.RawPayment
		if err := e.serde.Decode(t.Context(), r.Value, &p); err != nil {
			t.Fatalf("payments.raw value does not decode: %v", err)
		}
		if p.CVV != nil {
			t.Fatalf("payments.raw carries a CVV")
		}
	}
	if len(raw) != 3 || keys["key-1"] != 1 || keys["key-2"] != 1 || keys["p-3"] != 1 {
		t.Fatalf("payments.raw keys %v, want key-1, key-2 and p-3 once each", keys)
	}
	if n := len(e.read(e.topics.GatewayIdempotency)); n != 3 {
		t.Fatalf("idempotency topic holds %d records, want 3", n)
	}

	// A new instance (a restart, or another replica) rebuilds the keys
	// from the topic: the retry is still a replay, the change still 409.
	e.stop()
	e.start(t.Name() + "-2")
	if r := e.post("/v1/payments", body, "Idempotency-Key", "key-1"); r.status != http.StatusAccepted || string(r.body) != string(first.body) {
		t.Fatalf("retry after restart: %d %s", r.status, redact(r.body))
	}
	if r := e.post("/v1/payments", paymentJSON("p-1", testCards[1], `amount_minor=1`), "Idempotency-Key", "key-1"); r.status != http.StatusConflict {
		t.Fatalf("changed body after restart: %d", r.status)
	}
	if n := len(e.read(e.topics.PaymentsRaw)); n != 3 {
		t.Fatalf("payments.raw holds %d records after restart retries, want 3", n)
	}
	e.assertNoLeaks(nil)
	_ = fmt.Sprint()
}
