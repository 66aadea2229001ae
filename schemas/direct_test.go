package schemas

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
)

func readersOf(t testing.TB) map[reflect.Type]avro.Schema {
	t.Helper()
	defs, err := Defs()
	if err != nil {
		t.Fatal(err)
	}
	readers := map[reflect.Type]avro.Schema{}
	for _, d := range defs {
		readers[d.Type] = d.Schema
	}
	return readers
}

// TestDirectMatchesHamba: the direct encoders of tokenized payments and
// vault entries write hamba/avro's bytes (every event type, both union
// branches, negative and large numbers, empty and long strings and bytes),
// are used for the shipped schemas, and reject an unknown event type as
// hamba/avro does.
func TestDirectMatchesHamba(t *testing.T) {
	readers := readersOf(t)
	ids := map[reflect.Type]int{tokenizedType: 3, vaultType: 4}
	direct := &Serde{readers: readers, ids: ids}
	direct.vaultDirect = layoutIs(readers[vaultType], vaultLayout)
	direct.eventSymbols = eventSymbols(readers[tokenizedType])
	if !direct.vaultDirect || direct.eventSymbols == nil {
		t.Fatal("the shipped schemas do not take the direct encoders")
	}
	reflective := &Serde{readers: readers, ids: ids}
	same := func(name string, v any) {
		t.Helper()
		got, err := direct.AppendEncode([]byte("p"), v)
		if err != nil {
			t.Fatal(err)
		}
		want, err := reflective.AppendEncode([]byte("p"), v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: direct %x, hamba/avro %x", name, got, want)
		}
	}
	parent, long := "ctx-parent", strings.Repeat("é", 500)
	for i, et := range []EventType{Authorization, Capture, Refund, Chargeback, SplitChild} {
		p := TokenizedPayment{PaymentID: "pay-1", IdempotencyKey: "idem-1", EventType: et, Token: "tok_v1_abc",
			KeyVersion: int32(i), BIN: "411111", Last4: "1234", Brand: "visa", ContextID: "ctx", AmountMinor: -5,
			Currency: "EUR", MerchantID: "m", OccurredAt: 1700000000000, SourceTopic: "payments.raw",
			SourcePartition: int32(i), SourceOffset: 1 << 50}
		same("tokenized, no parents", &p)
		p.ParentContextID, p.ParentPaymentID = &parent, &long
		same("tokenized, parents", &p)
		p.ParentPaymentID, p.PaymentID, p.SourcePartition = nil, long, -1
		same("tokenized, one parent", &p)
	}
	same("tokenized, zero", &TokenizedPayment{EventType: Authorization})
	for _, v := range []VaultEntry{
		{},
		{Token: "tok_v1_abc", KeyVersion: 1, KEKID: "kek-1", WrappedKey: bytes.Repeat([]byte{1}, 40), Nonce: make([]byte, 12),
			Ciphertext: bytes.Repeat([]byte{0xff}, 300), Algorithm: "AES-256-GCM", CreatedAt: -1},
	} {
		same("vault", &v)
	}
	bad := &TokenizedPayment{EventType: "NOPE"}
	if _, err := direct.AppendEncode(nil, bad); err == nil {
		t.Fatal("an unknown event type was encoded")
	}
	if _, err := reflective.AppendEncode(nil, bad); err == nil {
		t.Fatal("hamba/avro encoded an unknown event type (the direct encoder's rejection would differ)")
	}
	if layoutIs(readers[auditType], vaultLayout) || eventSymbols(readers[vaultType]) != nil {
		t.Fatal("a schema of another layout was taken for a direct encoder")
	}
}
