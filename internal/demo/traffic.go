package demo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/pan/pantest"
	"github.com/pcistream/pcistream/schemas"
)

// traffic is the sample input and what a correct pipeline must make of it.
type traffic struct {
	payments []*kgo.Record
	// viaHTTP are the valid sample payments and their webhook retries, sent
	// through the HTTP gateway (see gateway.go); payments are what goes to
	// Kafka directly (retries the tokenizer dedups, invalid and malformed
	// input for the DLQ).
	viaHTTP []schemas.RawPayment
	logs    []*kgo.Record

	wantTokenized  int // distinct valid payments
	wantPaymentDLQ int // invalid payments
	retries        int // webhook retries that must be deduplicated
	wantSanitized  int // log records passed on masked
	wantLogDLQ     int // oversize log records
	pansInLogs     int // PANs planted in logs
}

type encoder interface {
	Encode(v any) ([]byte, error)
}

var networks = []pan.Network{pan.Visa, pan.Mastercard, pan.Amex, pan.Discover, pan.JCB, pan.Diners, pan.UnionPay, pan.Maestro, pan.Mir, pan.RuPay}

// newTraffic builds deterministic sample traffic: n valid payments across
// every network (authorizations, a split with children, a refund and a
// chargeback), webhook retries, invalid and malformed payments, and log
// lines with PANs in the formats logs really carry them in.
func newTraffic(enc encoder, t config.Topics, n int, now time.Time) (*traffic, error) {
	r := rand.New(rand.NewPCG(2026, 11))
	tr := &traffic{}
	exp := int32(now.Year() + 2)
	str := func(s string) *string { return &s }
	add := func(p schemas.RawPayment) error {
		b, err := enc.Encode(&p)
		if err != nil {
			return err
		}
		tr.payments = append(tr.payments, &kgo.Record{Topic: t.PaymentsRaw, Key: []byte(p.IdempotencyKey), Value: b})
		return nil
	}
	base := func(i int, nw pan.Network) schemas.RawPayment {
		ls := pantest.Lengths(nw)
		digits := pantest.Generate(r, nw, ls[len(ls)-1])
		return schemas.RawPayment{
			PaymentID:      fmt.Sprintf("pay-%05d", i),
			IdempotencyKey: fmt.Sprintf("idem-%05d", i),
			EventType:      schemas.Authorization,
			PAN:            string(digits),
			ExpiryMonth:    12,
			ExpiryYear:     exp,
			CVV:            str(fmt.Sprintf("%03d", r.IntN(1000))),
			CardholderName: str("Jane Q. Cardholder"),
			AmountMinor:    int64(100 + r.IntN(100000)),
			Currency:       []string{"EUR", "USD", "GBP", "JPY"}[i%4],
			MerchantID:     fmt.Sprintf("merchant-%02d", i%7),
			OccurredAt:     now.Add(time.Duration(i) * time.Second).UnixMilli(),
		}
	}
	var auths []schemas.RawPayment
	for i := 0; i < n; i++ {
		p := base(i, networks[i%len(networks)])
		auths = append(auths, p)
		tr.viaHTTP = append(tr.viaHTTP, p)
		tr.wantTokenized++
	}
	// Webhook retries through the gateway: answered from its
	// Idempotency-Key state, nothing produced.
	for i := 0; i < 5 && i < len(auths); i++ {
		tr.viaHTTP = append(tr.viaHTTP, auths[i])
		tr.retries++
	}
	// Webhook retries straight to Kafka: same idempotency key, new offset.
	for i := 0; i < 5 && i < len(auths); i++ {
		if err := add(auths[i]); err != nil {
			return nil, err
		}
		tr.retries++
	}
	// A split payment, a refund and a chargeback, linked to their parents.
	next := n
	link := func(parent schemas.RawPayment, et schemas.EventType) error {
		c := parent
		c.PaymentID = fmt.Sprintf("pay-%05d", next)
		c.IdempotencyKey = fmt.Sprintf("idem-%05d", next)
		c.EventType = et
		c.ParentPaymentID = str(parent.PaymentID)
		c.AmountMinor = parent.AmountMinor / 2
		next++
		tr.wantTokenized++
		tr.viaHTTP = append(tr.viaHTTP, c)
		return nil
	}
	for _, l := range []struct {
		parent int
		et     schemas.EventType
	}{{0, schemas.SplitChild}, {0, schemas.SplitChild}, {1, schemas.Refund}, {2, schemas.Chargeback}} {
		if err := link(auths[l.parent], l.et); err != nil {
			return nil, err
		}
	}
	// Invalid payments: Luhn failure, expired card, bad amount.
	bad := base(next, pan.Visa)
	last := bad.PAN[len(bad.PAN)-1]
	bad.PAN = bad.PAN[:len(bad.PAN)-1] + string('0'+(last-'0'+1)%10)
	expired := base(next+1, pan.Mastercard)
	expired.ExpiryYear = int32(now.Year() - 1)
	noAmount := base(next+2, pan.Amex)
	noAmount.AmountMinor = 0
	for _, p := range []schemas.RawPayment{bad, expired, noAmount} {
		if err := add(p); err != nil {
			return nil, err
		}
		tr.wantPaymentDLQ++
	}
	// Malformed Avro, an unknown schema id and binary junk.
	tr.payments = append(tr.payments,
		&kgo.Record{Topic: t.PaymentsRaw, Key: []byte("junk-1"), Value: []byte{0, 0, 0, 0, 1, 0xff, 0xff, 0xff}},
		&kgo.Record{Topic: t.PaymentsRaw, Key: []byte("junk-2"), Value: append([]byte{0, 0, 0, 0x7f, 0x7f}, []byte("4111111111111111")...)},
		&kgo.Record{Topic: t.PaymentsRaw, Key: []byte("junk-3"), Value: []byte{0x89, 'P', 'N', 'G', 0, 1, 2, 3}},
	)
	tr.wantPaymentDLQ += 3
	// The documented JSON alternative.
	jp := base(next+3, pan.Visa)
	jp.PaymentID, jp.IdempotencyKey = "pay-json", "idem-json"
	jb, err := json.Marshal(jp)
	if err != nil {
		return nil, err
	}
	tr.payments = append(tr.payments, &kgo.Record{Topic: t.PaymentsRaw, Key: []byte(jp.IdempotencyKey), Value: jb})
	tr.wantTokenized++

	// Logs: clean lines, PANs in text, JSON, URLs, XML and headers, junk,
	// and one record over the size limit.
	styles := pantest.Styles()
	for i := 0; i < n; i++ {
		nw := networks[i%len(networks)]
		ls := pantest.Lengths(nw)
		digits := pantest.Generate(r, nw, ls[0])
		p := pantest.Format(digits, styles[i%len(styles)])
		var line string
		switch i % 5 {
		case 0:
			line = fmt.Sprintf(`%s INFO checkout completed order=%d card=%s`, now.Format(time.RFC3339), 100000+i, p)
		case 1:
			line = fmt.Sprintf(`{"level":"warn","msg":"retrying charge","card_number":"%s","attempt":2}`, p)
		case 2:
			line = fmt.Sprintf(`GET /v1/charge?pan=%s&amount=1200 HTTP/1.1`, p)
		case 3:
			line = fmt.Sprintf(`<payment><id>%d</id><pan>%s</pan></payment>`, i, p)
		default:
			line = fmt.Sprintf(`debug: card %s declined (issuer timeout)`, p)
		}
		rec := &kgo.Record{Topic: t.LogsRaw, Value: []byte(line)}
		if i%10 == 0 {
			rec.Headers = []kgo.RecordHeader{{Key: "x-card", Value: []byte(p)}}
			tr.pansInLogs++
		}
		tr.logs = append(tr.logs, rec)
		tr.pansInLogs++
		tr.wantSanitized++
		tr.logs = append(tr.logs, &kgo.Record{Topic: t.LogsRaw, Value: []byte(fmt.Sprintf("%s INFO health ok latency_ms=%d build=1.4.%d", now.Format(time.RFC3339), r.IntN(90), i))})
		tr.wantSanitized++
	}
	junk := make([]byte, 512)
	for i := range junk {
		junk[i] = byte(r.IntN(256))
	}
	tr.logs = append(tr.logs, &kgo.Record{Topic: t.LogsRaw, Value: junk})
	tr.wantSanitized++
	big := bytes.Repeat([]byte("x"), 600<<10) // over the demo masker's 512 KiB limit, under Kafka's 1 MiB
	copy(big[1000:], pantest.Generate(r, pan.Visa, 16))
	tr.logs = append(tr.logs, &kgo.Record{Topic: t.LogsRaw, Value: big})
	tr.wantLogDLQ++
	return tr, nil
}
