package tokenizer

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/schemas"
)

func TestTokenizeEndToEnd(t *testing.T) {
	e := newEnv(t)
	kr, _ := token.NewKeyring()
	tk := e.tokenizer(kr)

	var recs []*kgo.Record
	for i, c := range testCards {
		p := payment(fmt.Sprintf("pay-%d", i), fmt.Sprintf("idem-%d", i), c)
		recs = append(recs, &kgo.Record{Key: []byte(p.IdempotencyKey), Value: e.encode(p), Partition: int32(i % 3)})
	}
	// Lifecycle of pay-0: refund and chargeback link to it; pay-0 also splits.
	parent := "pay-0"
	refund := payment("ref-0", "idem-ref-0", testCards[0])
	refund.EventType, refund.ParentPaymentID = schemas.Refund, &parent
	cb := payment("cb-0", "idem-cb-0", testCards[0])
	cb.EventType, cb.ParentPaymentID = schemas.Chargeback, &parent
	child := payment("split-0a", "idem-split-0a", testCards[0])
	child.EventType, child.ParentPaymentID = schemas.SplitChild, &parent
	for _, p := range []*schemas.RawPayment{refund, cb, child} {
		recs = append(recs, &kgo.Record{Key: []byte(p.IdempotencyKey), Value: e.encode(p), Partition: 0})
	}
	// JSON alternative, spaces in the PAN.
	recs = append(recs, &kgo.Record{Partition: 1, Value: []byte(`{"payment_id":"json-1","idempotency_key":"idem-json-1","event_type":"AUTHORIZATION",` +
		`"pan":"4111 1111 1111 1111","expiry_month":1,"expiry_year":2031,"cvv":"` + testCVV + `","amount_minor":500,"currency":"USD","merchant_id":"m-2","occurred_at":1790000000000}`)})
	e.produce(recs...)

	stop := e.run(tk, "g-"+t.Name())
	defer stop()
	out := e.decodeTokenized(e.waitCount(e.topics.PaymentsTokenized, len(recs), 30*time.Second))
	e.waitCount(e.topics.AuditEvents, len(recs), 10*time.Second)
	stop()

	byID := map[string]schemas.TokenizedPayment{}
	for _, p := range out {
		byID[p.PaymentID] = p
	}
	if len(out) != len(recs) || len(byID) != len(recs) {
		t.Fatalf("%d tokenized events for %d inputs (%d distinct)", len(out), len(recs), len(byID))
	}
	p0 := byID["pay-0"]
	if !strings.HasPrefix(p0.Token, "tok_v1_") || p0.KeyVersion != 1 || p0.BIN != "411111" || p0.Last4 != "1111" || p0.Brand != "visa" {
		t.Fatalf("pay-0: token prefix %q version %d bin %s last4 %s brand %s", p0.Token[:7], p0.KeyVersion, p0.BIN, p0.Last4, p0.Brand)
	}
	if byID["pay-2"].Brand != "amex" || byID["pay-1"].Brand != "mastercard" {
		t.Fatalf("brands: %s %s", byID["pay-2"].Brand, byID["pay-1"].Brand)
	}
	// Same PAN, same key version: same token (JSON input included).
	if byID["json-1"].Token != p0.Token || byID["ref-0"].Token != p0.Token {
		t.Fatal("the same PAN got different tokens")
	}
	// Refund and chargeback carry the original context; the split child derives from it.
	if byID["ref-0"].ContextID != p0.ContextID || byID["cb-0"].ContextID != p0.ContextID ||
		byID["cb-0"].ParentContextID == nil || *byID["cb-0"].ParentContextID != p0.ContextID {
		t.Fatal("refund/chargeback do not carry the original context id")
	}
	sc := byID["split-0a"]
	if sc.ParentContextID == nil || *sc.ParentContextID != p0.ContextID || sc.ContextID == p0.ContextID ||
		sc.ContextID != childContext(p0.ContextID, "split-0a") {
		t.Fatal("split child context not derived from the parent")
	}

	// Vault: one entry per token, decrypting to the PAN.
	v := token.NewVault(kr)
	for _, id := range []string{"pay-0", "pay-2"} {
		tp := byID[id]
		vr, err := LookupVault(context.Background(), e.opts, e.serde, e.topics.Vault, tp.Token)
		if err != nil {
			t.Fatal(err)
		}
		ve := vr.Entry
		got, err := v.Open(context.Background(), tp.Token, token.Sealed{KeyVersion: uint32(ve.KeyVersion), WrappedKey: ve.WrappedKey, Nonce: ve.Nonce, Ciphertext: ve.Ciphertext})
		if err != nil {
			t.Fatal(err)
		}
		if tp.BIN != binOf(got) || string(got[len(got)-4:]) != tp.Last4 || ve.KEKID != "keyring:v1" {
			t.Fatalf("vault for %s decrypts to a different card (len %d)", id, len(got))
		}
	}
	// Audit events: one tokenize per input, deterministic ids.
	audits := e.read(e.topics.AuditEvents, false)
	n := 0
	for _, r := range audits {
		var a schemas.AuditEvent
		if err := e.serde.Decode(context.Background(), r.Value, &a); err != nil {
			t.Fatal(err)
		}
		if a.Action == "tokenize" && a.Outcome == "ok" && a.Actor == Name && a.ID == AuditID(Name, "tokenize", a.Topic, a.Partition, a.Offset) {
			n++
		}
	}
	if n != len(recs) {
		t.Fatalf("%d tokenize audit events, want %d", n, len(recs))
	}
	e.assertClean(e.allOutputs()...)
}

func TestInvalidInputGoesToDLQ(t *testing.T) {
	e := newEnv(t)
	kr, _ := token.NewKeyring()
	tk := e.tokenizer(kr)

	good := payment("good", "idem-good", testCards[0])
	id, _ := e.serde.ID(good)
	type bad struct {
		code  string
		value []byte
	}
	mk := func(mut func(p *schemas.RawPayment)) []byte {
		p := payment("bad", "", testCards[1])
		mut(p)
		return e.encode(p)
	}
	unknownID := append([]byte(nil), e.encode(payment("x", "", testCards[0]))...)
	binary.BigEndian.PutUint32(unknownID[1:5], 987654)
	truncated := e.encode(payment("t", "", testCards[0]))
	truncated = truncated[:len(truncated)/2]
	garbage := append([]byte{0}, binary.BigEndian.AppendUint32(nil, uint32(id))...)
	garbage = append(garbage, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, '9', '7', '3', '1')
	cases := []bad{
		{ReasonMalformedAvro, truncated},
		{ReasonMalformedAvro, garbage},
		{ReasonUnknownSchemaID, unknownID},
		{ReasonUnknownEncoding, []byte("pan=4111111111111111 cvv=" + testCVV)},
		{ReasonMalformedJSON, []byte(`{"pan":"4111111111111111","cvv":"` + testCVV + `",`)},
		{ReasonLuhnFailed, mk(func(p *schemas.RawPayment) { p.PAN = "4111111111111112" })},
		{ReasonInvalidPAN, mk(func(p *schemas.RawPayment) { p.PAN = "41111111" })},
		{ReasonInvalidPAN, mk(func(p *schemas.RawPayment) { p.PAN = "4111x11111111111" })},
		{ReasonExpiredCard, mk(func(p *schemas.RawPayment) { p.ExpiryYear, p.ExpiryMonth = 2020, 1 })},
		{ReasonInvalidExpiry, mk(func(p *schemas.RawPayment) { p.ExpiryMonth = 13 })},
		{ReasonInvalidAmount, mk(func(p *schemas.RawPayment) { p.AmountMinor = 0 })},
		{ReasonInvalidCurrency, mk(func(p *schemas.RawPayment) { p.Currency = "EURO" })},
		{ReasonMissingParent, mk(func(p *schemas.RawPayment) { p.EventType = schemas.Refund })},
	}
	var recs []*kgo.Record
	for _, c := range cases {
		recs = append(recs, &kgo.Record{Value: c.value, Partition: 0})
	}
	recs = append(recs, &kgo.Record{Key: []byte("idem-good"), Value: e.encode(good), Partition: 0})
	e.produce(recs...)

	stop := e.run(tk, "g-"+t.Name())
	defer stop()
	e.waitCount(e.topics.PaymentsTokenized, 1, 30*time.Second)
	dlq := e.waitCount(e.topics.PaymentsDLQ, len(cases), 10*time.Second)
	if len(dlq) != len(cases) {
		t.Fatalf("%d DLQ records, want %d", len(dlq), len(cases))
	}
	got := map[int64]bool{}
	for _, r := range dlq {
		var d schemas.DLQRecord
		if err := e.serde.Decode(context.Background(), r.Value, &d); err != nil {
			t.Fatal(err)
		}
		i := int(d.SourceOffset)
		if i < 0 || i >= len(cases) || got[d.SourceOffset] {
			t.Fatalf("DLQ record for unexpected source offset %d", i)
		}
		got[d.SourceOffset] = true
		if d.ReasonCode != cases[i].code || d.Processor != Name || d.Reason == "" {
			t.Errorf("DLQ for offset %d: reason %q, want %q", i, d.ReasonCode, cases[i].code)
		}
		if cases[i].code != ReasonMalformedAvro && cases[i].code != ReasonUnknownSchemaID && bytes.Contains(d.MaskedValue, []byte("Cardholder")) {
			t.Errorf("DLQ for offset %d: masked copy of a decoded payment holds the cardholder name", i)
		}
		if cases[i].code == ReasonLuhnFailed && !bytes.Contains(d.MaskedValue, []byte(`"pan_masked":"************1112"`)) {
			t.Errorf("luhn-failed masked copy lacks the last-4 masked PAN")
		}
		if cases[i].code == ReasonUnknownSchemaID && (d.SchemaID == nil || *d.SchemaID != 987654) {
			t.Errorf("unknown schema id not recorded")
		}
	}
	// Every input got an audit event (13 dlq + 1 tokenize).
	e.waitCount(e.topics.AuditEvents, len(recs), 10*time.Second)
	e.assertClean(e.allOutputs()...)
}

func TestWebhookRetryDedup(t *testing.T) {
	e := newEnv(t)
	kr, _ := token.NewKeyring()
	p := payment("pay-1", "webhook-1", testCards[0])
	v := e.encode(p)
	// Event times near now: a real broker deletes records older than a
	// topic's retention.ms (raw 7 days, state 25 hours) from under the test.
	// The original is 24h40m old, so its state entry outlives the test and
	// the retry 25 hours later is 20 minutes ahead (the broker accepts up to
	// message.timestamp.after.max.ms, one hour by default).
	ts := time.Now().Add(-24*time.Hour - 40*time.Minute).Truncate(time.Second)
	// The original and a retry 10 minutes later at a new offset, same partition
	// (producers key by idempotency key), plus an unrelated payment.
	e.produce(
		&kgo.Record{Key: []byte("webhook-1"), Value: v, Partition: 1, Timestamp: ts},
		&kgo.Record{Key: []byte("webhook-1"), Value: v, Partition: 1, Timestamp: ts.Add(10 * time.Minute)},
		&kgo.Record{Key: []byte("other"), Value: e.encode(payment("pay-2", "other", testCards[1])), Partition: 1, Timestamp: ts},
	)
	group := "g-" + t.Name()
	stop := e.run(e.tokenizer(kr), group)
	e.waitCount(e.topics.AuditEvents, 3, 30*time.Second)
	stop()
	if got := len(e.read(e.topics.PaymentsTokenized, false)); got != 2 {
		t.Fatalf("%d tokenized events, want 2 (retry deduplicated)", got)
	}
	// State entries sit on the partition their key hashes to (murmur2, the
	// repartition topic's), whatever partition the input was on.
	for _, r := range e.read(e.topics.Idempotency, false) {
		want := int32(kgo.StickyKeyPartitioner(nil).ForTopic(e.topics.Idempotency).Partition(&kgo.Record{Key: r.Key}, 3))
		if r.Partition != want {
			t.Fatalf("idempotency entry on partition %d, its key hashes to %d", r.Partition, want)
		}
	}

	// A new process (fresh memory) must rebuild the state from the state
	// topic: a retry 23 hours later is still a duplicate; one 25 hours
	// after the original is a new request.
	e.produce(
		&kgo.Record{Key: []byte("webhook-1"), Value: v, Partition: 1, Timestamp: ts.Add(23 * time.Hour)},
		&kgo.Record{Key: []byte("webhook-1"), Value: v, Partition: 1, Timestamp: ts.Add(25 * time.Hour)},
	)
	tk2 := e.tokenizer(kr)
	stop = e.run(tk2, group)
	e.waitCount(e.topics.AuditEvents, 5, 30*time.Second)
	stop()
	got := e.read(e.topics.PaymentsTokenized, false)
	if len(got) != 3 {
		t.Fatalf("%d tokenized events after restart, want 3", len(got))
	}
	if s := tk2.Stats(); s.Duplicates != 1 || s.Tokenized != 1 {
		t.Fatalf("restarted tokenizer stats %+v, want 1 duplicate and 1 tokenized", s)
	}
	e.assertClean(e.allOutputs()...)
}

// replayInput is the replay tests' input: 30 payments over 25 idempotency
// keys (5 retries), every seventh dead-lettered, at recent event times (a
// real broker deletes records older than a topic's retention.ms, raw and
// tokenized 7 days, from under the test).
//
// A key's retries share an input partition: byte-identical replay holds
// when a key's records reach the repartition topic in the same order.
// Retries of one key on different input partitions race there, and the
// first to arrive (not the earliest timestamp) is tokenized;
// TestDedupAcrossPartitioners covers that case for exactly-one-event, not
// for byte identity.
func replayInput(e *env) []*kgo.Record {
	ts := time.Now().Add(-time.Hour).Truncate(time.Second)
	var recs []*kgo.Record
	for i := 0; i < 30; i++ {
		p := payment(fmt.Sprintf("pay-%d", i), fmt.Sprintf("idem-%d", i%25), testCards[i%len(testCards)])
		if i%7 == 3 {
			p.Currency = "XXXX" // DLQ
		}
		recs = append(recs, &kgo.Record{Key: []byte(p.IdempotencyKey), Value: e.encode(p), Partition: int32(i % 25 % 3), Timestamp: ts.Add(time.Duration(i) * time.Second)})
	}
	return recs
}

func TestReplayIsByteIdentical(t *testing.T) {
	e := newEnv(t)
	kr, _ := token.NewKeyring()
	recs := replayInput(e)
	e.produce(recs...)
	stop := e.run(e.tokenizer(kr), "g-"+t.Name())
	e.waitCount(e.topics.AuditEvents, len(recs), 30*time.Second)
	stop()

	// Replay the same offsets into fresh output topics (and fresh state).
	tp2 := e.topics
	for _, p := range []*string{&tp2.PaymentsTokenized, &tp2.PaymentsDLQ, &tp2.AuditEvents, &tp2.Vault, &tp2.Idempotency} {
		*p += ".replay"
	}
	e2 := newEnvTopics(t, tp2)
	stop = e2.run(e2.tokenizer(kr), "g-replay-"+t.Name())
	e2.waitCount(tp2.AuditEvents, len(recs), 30*time.Second)
	stop()

	for _, pair := range [][2]string{{e.topics.PaymentsTokenized, tp2.PaymentsTokenized}, {e.topics.PaymentsDLQ, tp2.PaymentsDLQ}, {e.topics.AuditEvents, tp2.AuditEvents}} {
		a, b := bySource(e.read(pair[0], false)), bySource(e2.read(pair[1], false))
		if len(a) == 0 || len(a) != len(b) {
			t.Fatalf("%s: %d records, replay %d", pair[0], len(a), len(b))
		}
		for k, r := range a {
			r2, ok := b[k]
			if !ok || !bytes.Equal(r.Key, r2.Key) || !bytes.Equal(r.Value, r2.Value) || !r.Timestamp.Equal(r2.Timestamp) {
				t.Fatalf("%s: record for %s differs on replay", pair[0], k)
			}
		}
	}
}

// bySource indexes output records by the audit/DLQ/tokenized key+partition+
// offset-independent identity: the record key plus its ordinal per key.
func bySource(recs []*kgo.Record) map[string]*kgo.Record {
	out := map[string]*kgo.Record{}
	seen := map[string]int{}
	for _, r := range recs {
		k := string(r.Key)
		out[fmt.Sprintf("%s#%d", k, seen[k])] = r
		seen[k]++
	}
	return out
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	kr1, _ := token.NewKeyring()
	e.produce(&kgo.Record{Key: []byte("a"), Value: e.encode(payment("a", "a", testCards[0])), Partition: 0})
	group := "g-" + t.Name()
	stop := e.run(e.tokenizer(kr1), group)
	e.waitCount(e.topics.PaymentsTokenized, 1, 30*time.Second)
	stop()

	kr2, err := kr1.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	e.produce(&kgo.Record{Key: []byte("b"), Value: e.encode(payment("b", "b", testCards[0])), Partition: 0})
	stop = e.run(e.tokenizer(kr2), group)
	out := e.decodeTokenized(e.waitCount(e.topics.PaymentsTokenized, 2, 30*time.Second))
	stop()
	slices.SortFunc(out, func(x, y schemas.TokenizedPayment) int { return strings.Compare(x.PaymentID, y.PaymentID) })
	if out[0].KeyVersion != 1 || out[1].KeyVersion != 2 || !strings.HasPrefix(out[1].Token, "tok_v2_") || out[0].Token == out[1].Token {
		t.Fatalf("versions %d,%d", out[0].KeyVersion, out[1].KeyVersion)
	}
	// Both tokens detokenize with the rotated keyring; the old keyring cannot open v2.
	v2 := token.NewVault(kr2)
	for _, tp := range out {
		vr, err := LookupVault(context.Background(), e.opts, e.serde, e.topics.Vault, tp.Token)
		if err != nil {
			t.Fatal(err)
		}
		ve := vr.Entry
		s := token.Sealed{KeyVersion: uint32(ve.KeyVersion), WrappedKey: ve.WrappedKey, Nonce: ve.Nonce, Ciphertext: ve.Ciphertext}
		got, err := v2.Open(context.Background(), tp.Token, s)
		if err != nil || string(got[len(got)-4:]) != tp.Last4 {
			t.Fatalf("v%d token does not detokenize after rotation: %v", tp.KeyVersion, err)
		}
		if tp.KeyVersion == 2 {
			if _, err := token.NewVault(kr1).Open(context.Background(), tp.Token, s); err == nil {
				t.Fatal("pre-rotation keyring opened a v2 record")
			}
		}
	}
	e.assertClean(e.allOutputs()...)
}

func TestAuditEncodingIsDeterministicAndDecodes(t *testing.T) {
	e := newEnv(t)
	ev := schemas.AuditEvent{ID: "x", Actor: Name, Action: "tokenize", Outcome: "ok", Topic: "t", Subject: "s",
		Attrs: map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6"}}
	first, err := EncodeAudit(e.serde, ev)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		b, _ := EncodeAudit(e.serde, ev)
		if !bytes.Equal(b, first) {
			t.Fatal("audit encoding is not deterministic")
		}
	}
	var back schemas.AuditEvent
	if err := e.serde.Decode(context.Background(), first, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Attrs) != 6 || back.Attrs["f"] != "6" || back.Action != "tokenize" {
		t.Fatalf("decoded %+v", back)
	}
}
