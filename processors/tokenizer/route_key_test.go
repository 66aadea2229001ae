package tokenizer

import (
	"context"
	"testing"

	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/schemas"
)

// The router reads only the key fields of payments in the tokenizer's own
// schema; it must pick the same key as a full decode, and leave everything
// it cannot read to the full decode.
func TestRouteKeyMatchesFullDecode(t *testing.T) {
	e := newEnv(t)
	kr, err := token.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	tk := e.tokenizer(kr)
	defer tk.Close()
	p := NewProcessor(tk)
	if p.rawID < 0 {
		t.Fatal("raw_payment.avsc no longer starts with payment_id, idempotency_key: the router always decodes in full")
	}
	for _, c := range []struct{ id, idem, want string }{
		{"pay-1", "idem-1", "idem-1"}, {"pay-2", "", "pay-2"}, {"", "idem-3", "idem-3"}, {"", "", ""},
		{"p", string(make([]byte, 300)), string(make([]byte, 300))},
	} {
		v := e.encode(payment(c.id, c.idem, testCards[0]))
		var full schemas.RawPayment
		if err := e.serde.Decode(context.Background(), v, &full); err != nil {
			t.Fatal(err)
		}
		got, ok := p.avroKey(v)
		if ok != (c.want != "") || got != c.want {
			t.Errorf("avroKey(payment %q/%q) = %q, %v; want %q", c.id, c.idem, got, ok, c.want)
		}
		if fullKey := map[bool]string{true: full.IdempotencyKey, false: full.PaymentID}[full.IdempotencyKey != ""]; ok && fullKey != got {
			t.Errorf("full decode keys %q, avroKey %q", fullKey, got)
		}
		// Truncated inside the key fields: left to the full decode.
		for _, n := range []int{0, 4, 5, 6, 8} {
			if n < len(v) {
				if k, ok := p.avroKey(v[:n]); ok && n < 5+2+len(c.id)+len(c.idem) {
					t.Errorf("avroKey of %d of %d bytes = %q, want not ok", n, len(v), k)
				}
			}
		}
	}
	// Another schema id, JSON, a negative length: not read.
	v := e.encode(payment("pay-x", "idem-x", testCards[0]))
	other := append([]byte{0, 0x7f, 0xff, 0xff, 0xff}, v[5:]...)
	neg := append(append([]byte(nil), v[:5]...), 0x01) // zig-zag -1
	for name, b := range map[string][]byte{"other id": other, "json": []byte(`{"payment_id":"a","idempotency_key":"b"}`), "negative length": neg} {
		if k, ok := p.avroKey(b); ok {
			t.Errorf("%s: avroKey = %q, want not ok", name, k)
		}
	}
}
