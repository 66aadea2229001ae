package tokenizer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/schemas"
)

// luhnPAN returns a Luhn-valid PAN of n digits starting with prefix.
func luhnPAN(prefix string, n int) string {
	b := []byte(prefix + strings.Repeat("3", n-len(prefix)-1) + "0")
	sum := 0
	for i := len(b) - 2; i >= 0; i-- {
		d := int(b[i] - '0')
		if (len(b)-1-i)%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	b[len(b)-1] = byte('0' + (10-sum%10)%10)
	return string(b)
}

// transformTime is transformOne's record time. Recent, not a fixed date:
// a test that writes state entries of that time to a real broker would
// otherwise see them deleted under the idempotency topic's 25h retention
// whenever the broker's log cleaner (compact,delete, every 15 s) runs
// between write and restore.
var transformTime = time.Now().UTC().Truncate(time.Second)

// transformOne runs the pure transform on one raw record at offset off of
// partition 0, with partition 0 of the idempotency state restored; the
// state writes are dropped afterwards (nothing was produced).
func transformOne(t *testing.T, tk *Tokenizer, topic string, off int64, key, value []byte) []*kgo.Record {
	t.Helper()
	ctx := context.Background()
	if len(tk.cfg.stateOpts) == 0 {
		tk.cfg.stateOpts = []kgo.Opt{kgo.SeedBrokers(stack.KafkaAddrs...)}
	}
	tbl := tk.stateTable()
	tbl.Assign([]int32{0}, nil, nil)
	if err := tbl.WaitRestored(ctx, 0); err != nil {
		t.Fatalf("restoring state partition 0: %v", err)
	}
	rec := &kgo.Record{Topic: topic, Partition: 0, Offset: off, Key: key, Value: value,
		Timestamp: transformTime}
	out, err := tk.Transform(ctx, rec, nil)
	if err != nil {
		t.Fatalf("offset %d: transform: %v", off, err)
	}
	if err := tbl.Ended(false); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBINOnlyWhereSixDigitsStayHidden: the tokenized event carries the BIN
// only for PANs of 16 to 19 digits, so at least six digits stay hidden;
// shorter PANs carry last four and brand only.
func TestBINOnlyWhereSixDigitsStayHidden(t *testing.T) {
	e := newEnv(t)
	kr, _ := token.NewKeyring()
	tk := e.tokenizer(kr)
	for n := 12; n <= 19; n++ {
		card := luhnPAN("675900", n) // Maestro issues 12 to 19 digits
		p := payment("", "", card)
		out := transformOne(t, tk, e.topics.PaymentsRaw, int64(n), nil, e.encode(p))
		var tp *schemas.TokenizedPayment
		for _, r := range out {
			if r.Topic == e.topics.PaymentsTokenized {
				tp = new(schemas.TokenizedPayment)
				if err := e.serde.Decode(context.Background(), r.Value, tp); err != nil {
					t.Fatal(err)
				}
			}
		}
		if tp == nil {
			t.Fatalf("%d digits: no tokenized event", n)
		}
		wantBIN := ""
		if n >= 16 {
			wantBIN = card[:6]
		}
		if tp.BIN != wantBIN || tp.Last4 != card[n-4:] || tp.Brand != "maestro" {
			t.Errorf("%d digits: bin of %d digits (right: %v, want %d digits), last4 right: %v, brand %q (want maestro)",
				n, len(tp.BIN), tp.BIN == wantBIN, len(wantBIN), tp.Last4 == card[n-4:], tp.Brand)
		}
		if hidden := n - len(tp.BIN) - len(tp.Last4); hidden < 6 && tp.BIN != "" {
			t.Errorf("%d digits: only %d digits hidden", n, hidden)
		}
	}
}

// TestJSONMissingFieldDeadLetters: a JSON payment that lacks a required
// field, or holds it empty or null, goes to the DLQ as missing_field naming
// the field, before any other check.
func TestJSONMissingFieldDeadLetters(t *testing.T) {
	e := newEnv(t)
	kr, _ := token.NewKeyring()
	tk := e.tokenizer(kr)
	full := map[string]string{
		"payment_id": `"p-1"`, "idempotency_key": `"i-1"`, "pan": `"` + testCards[0] + `"`,
		"expiry_month": `12`, "expiry_year": `2030`, "amount_minor": `1999`, "currency": `"EUR"`,
		"merchant_id": `"m-1"`, "occurred_at": `1793620800000`,
	}
	doc := func(drop map[string]string) []byte {
		var parts []string
		for k, v := range full {
			if r, ok := drop[k]; ok {
				if r == "" {
					continue
				}
				v = r
			}
			parts = append(parts, `"`+k+`":`+v)
		}
		return []byte("{" + strings.Join(parts, ",") + "}")
	}
	cases := []struct {
		name  string
		value []byte
		want  []string // fields named in the reason; nil: tokenized
	}{
		{"complete", doc(nil), nil},
		{"no ids", doc(map[string]string{"payment_id": "", "idempotency_key": ""}), []string{"payment_id", "idempotency_key"}},
		{"empty pan", doc(map[string]string{"pan": `""`}), []string{"pan"}},
		{"null merchant", doc(map[string]string{"merchant_id": `null`}), []string{"merchant_id"}},
		{"blank currency", doc(map[string]string{"currency": `"  "`}), []string{"currency"}},
		{"no expiry", doc(map[string]string{"expiry_month": "", "expiry_year": ""}), []string{"expiry_month", "expiry_year"}},
		{"most missing", []byte(`{"pan":"` + testCards[0] + `"}`), []string{"payment_id", "idempotency_key", "expiry_month", "expiry_year", "amount_minor", "currency", "merchant_id", "occurred_at"}},
		{"wrong case", []byte(strings.Replace(string(doc(nil)), `"merchant_id"`, `"MERCHANT_ID"`, 1)), []string{"merchant_id"}},
	}
	for i, c := range cases {
		out := transformOne(t, tk, e.topics.PaymentsRaw, int64(i), nil, c.value)
		var dlq *schemas.DLQRecord
		tokenized := false
		for _, r := range out {
			switch r.Topic {
			case e.topics.PaymentsDLQ:
				dlq = new(schemas.DLQRecord)
				if err := e.serde.Decode(context.Background(), r.Value, dlq); err != nil {
					t.Fatal(err)
				}
			case e.topics.PaymentsTokenized:
				tokenized = true
			}
		}
		if c.want == nil {
			if !tokenized || dlq != nil {
				t.Errorf("%s: tokenized %v, dlq %v; want tokenized", c.name, tokenized, dlq != nil)
			}
			continue
		}
		if dlq == nil || tokenized {
			t.Errorf("%s: tokenized %v, dlq %v; want dead-lettered", c.name, tokenized, dlq != nil)
			continue
		}
		if dlq.ReasonCode != ReasonMissingField || dlq.Reason != "required field missing or empty: "+strings.Join(c.want, ", ") {
			t.Errorf("%s: reason %s %q, want %s naming %v", c.name, dlq.ReasonCode, dlq.Reason, ReasonMissingField, c.want)
		}
	}
}
