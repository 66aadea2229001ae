package schemas

import (
	"reflect"
	"testing"
)

func benchSerdes(b *testing.B) (direct, reflective *Serde) {
	readers := readersOf(b)
	ids := map[reflect.Type]int{tokenizedType: 3, vaultType: 4, auditType: 5}
	direct = &Serde{readers: readers, ids: ids, vaultDirect: true, auditDirect: true, eventSymbols: eventSymbols(readers[tokenizedType])}
	return direct, &Serde{readers: readers, ids: ids}
}

// BenchmarkEncodePerPayment encodes what the tokenizer writes per payment
// (tokenized payment, vault entry, audit event), directly and through
// hamba/avro.
func BenchmarkEncodePerPayment(b *testing.B) {
	direct, reflective := benchSerdes(b)
	p := &TokenizedPayment{PaymentID: "pay-123456", IdempotencyKey: "idem-123456", EventType: Authorization, Token: "tok_v1_0123456789abcdef0123456789",
		KeyVersion: 1, BIN: "411111", Last4: "1234", Brand: "visa", ContextID: "0123456789abcdef0123456789abcdef", AmountMinor: 1999,
		Currency: "EUR", MerchantID: "merchant-1", OccurredAt: 1700000000000, SourceTopic: "payments.raw", SourcePartition: 1, SourceOffset: 123456}
	v := &VaultEntry{Token: p.Token, KeyVersion: 1, KEKID: "local-v1", WrappedKey: make([]byte, 40), Nonce: make([]byte, 12), Ciphertext: make([]byte, 32), Algorithm: "AES-256-GCM", CreatedAt: 1700000000000}
	ev := &AuditEvent{ID: "0123456789abcdef0123456789abcdef", Time: 1700000000000, Actor: "tokenizer", Action: "tokenize", Outcome: "ok", Topic: "payments.raw", Partition: 1, Offset: 123456, Subject: p.ContextID}
	for _, c := range []struct {
		name string
		s    *Serde
	}{{"direct", direct}, {"hamba", reflective}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				c.s.AppendEncode(nil, p)
				c.s.AppendEncode(nil, v)
				attrs := [...]AuditAttr{{"token", p.Token}, {"key_version", "1"}, {"event_type", "AUTHORIZATION"}, {"payment_id", p.PaymentID}}
				c.s.AppendAudit(nil, ev, attrs[:])
			}
		})
	}
}
