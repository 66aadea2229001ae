package schemas

import (
	"encoding/binary"
	"fmt"
	"reflect"

	"github.com/hamba/avro/v2"
)

// Direct encoders for the records the tokenizer writes per payment (the
// tokenized payment and its vault entry; the audit event is in
// audit_attrs.go): Avro's binary encoding written field by field, without
// reflection. Each is used only while its schema has exactly the layout it
// writes (checked when the Serde is built); TestDirectMatchesHamba compares
// their bytes with hamba/avro's.

// field is one expected schema field: its name and Avro type; for unions,
// the branch types in order.
type field struct {
	name  string
	typ   avro.Type
	union []avro.Type
}

var (
	tokenizedType = reflect.TypeOf(TokenizedPayment{})
	vaultType     = reflect.TypeOf(VaultEntry{})
	optString     = []avro.Type{avro.Null, avro.String}

	tokenizedLayout = []field{
		{name: "payment_id", typ: avro.String}, {name: "idempotency_key", typ: avro.String},
		{name: "event_type", typ: avro.Enum}, {name: "token", typ: avro.String}, {name: "key_version", typ: avro.Int},
		{name: "bin", typ: avro.String}, {name: "last4", typ: avro.String}, {name: "brand", typ: avro.String},
		{name: "context_id", typ: avro.String}, {name: "parent_context_id", typ: avro.Union, union: optString},
		{name: "parent_payment_id", typ: avro.Union, union: optString}, {name: "amount_minor", typ: avro.Long},
		{name: "currency", typ: avro.String}, {name: "merchant_id", typ: avro.String}, {name: "occurred_at", typ: avro.Long},
		{name: "source_topic", typ: avro.String}, {name: "source_partition", typ: avro.Int}, {name: "source_offset", typ: avro.Long},
	}
	vaultLayout = []field{
		{name: "token", typ: avro.String}, {name: "key_version", typ: avro.Int}, {name: "kek_id", typ: avro.String},
		{name: "wrapped_key", typ: avro.Bytes}, {name: "nonce", typ: avro.Bytes}, {name: "ciphertext", typ: avro.Bytes},
		{name: "algorithm", typ: avro.String}, {name: "created_at", typ: avro.Long},
	}
)

// layoutIs reports whether sch is a record with exactly these fields.
func layoutIs(sch avro.Schema, want []field) bool {
	rs, ok := sch.(*avro.RecordSchema)
	if !ok || len(rs.Fields()) != len(want) {
		return false
	}
	for i, f := range rs.Fields() {
		if f.Name() != want[i].name || f.Type().Type() != want[i].typ {
			return false
		}
		if want[i].typ != avro.Union {
			continue
		}
		us := f.Type().(*avro.UnionSchema).Types()
		if len(us) != len(want[i].union) {
			return false
		}
		for j, u := range us {
			if u.Type() != want[i].union[j] {
				return false
			}
		}
	}
	return true
}

// eventSymbols returns the event_type enum's symbols when the tokenized
// payment schema has the direct encoder's layout, else nil.
func eventSymbols(sch avro.Schema) []string {
	if !layoutIs(sch, tokenizedLayout) {
		return nil
	}
	return sch.(*avro.RecordSchema).Fields()[2].Type().(*avro.EnumSchema).Symbols()
}

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendVarint(b, int64(len(s))), s...)
}

func appendBytes(b, v []byte) []byte {
	return append(binary.AppendVarint(b, int64(len(v))), v...)
}

func appendOptStr(b []byte, s *string) []byte {
	if s == nil {
		return append(b, 0) // branch 0: null
	}
	return appendStr(append(b, 2), *s) // branch 1, zig-zag
}

// grow makes room for n more bytes in one allocation.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}

func header(b []byte, id int) []byte {
	b = append(b, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[len(b)-4:], uint32(id))
	return b
}

func (s *Serde) appendTokenized(b []byte, id int, p *TokenizedPayment) ([]byte, error) {
	sym := -1
	for i, e := range s.eventSymbols {
		if string(p.EventType) == e {
			sym = i
			break
		}
	}
	if sym < 0 {
		return nil, fmt.Errorf("schemas: encode %v: avro: unknown enum symbol: %s", tokenizedType.Name(), p.EventType)
	}
	strs := [...]string{p.PaymentID, p.IdempotencyKey, p.Token, p.BIN, p.Last4, p.Brand, p.ContextID, p.Currency, p.MerchantID, p.SourceTopic}
	n := 5 + 2*2*binary.MaxVarintLen64 + 6*binary.MaxVarintLen64
	for _, x := range strs {
		n += varintLen(len(x)) + len(x)
	}
	for _, x := range [...]*string{p.ParentContextID, p.ParentPaymentID} {
		if x != nil {
			n += len(*x)
		}
	}
	b = header(grow(b, n), id)
	b = appendStr(b, p.PaymentID)
	b = appendStr(b, p.IdempotencyKey)
	b = binary.AppendVarint(b, int64(sym))
	b = appendStr(b, p.Token)
	b = binary.AppendVarint(b, int64(p.KeyVersion))
	b = appendStr(b, p.BIN)
	b = appendStr(b, p.Last4)
	b = appendStr(b, p.Brand)
	b = appendStr(b, p.ContextID)
	b = appendOptStr(b, p.ParentContextID)
	b = appendOptStr(b, p.ParentPaymentID)
	b = binary.AppendVarint(b, p.AmountMinor)
	b = appendStr(b, p.Currency)
	b = appendStr(b, p.MerchantID)
	b = binary.AppendVarint(b, p.OccurredAt)
	b = appendStr(b, p.SourceTopic)
	b = binary.AppendVarint(b, int64(p.SourcePartition))
	return binary.AppendVarint(b, p.SourceOffset), nil
}

func appendVault(b []byte, id int, v *VaultEntry) []byte {
	n := 5 + 8*binary.MaxVarintLen64 + len(v.Token) + len(v.KEKID) + len(v.WrappedKey) + len(v.Nonce) +
		len(v.Ciphertext) + len(v.Algorithm)
	b = header(grow(b, n), id)
	b = appendStr(b, v.Token)
	b = binary.AppendVarint(b, int64(v.KeyVersion))
	b = appendStr(b, v.KEKID)
	b = appendBytes(b, v.WrappedKey)
	b = appendBytes(b, v.Nonce)
	b = appendBytes(b, v.Ciphertext)
	b = appendStr(b, v.Algorithm)
	return binary.AppendVarint(b, v.CreatedAt)
}
