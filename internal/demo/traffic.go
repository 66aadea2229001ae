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
	// What the gateway answered: sent, of which retries; accepted fresh,
	// replayed from Idempotency-Key state.
	gwSent, gwRetried, gwFresh, gwReplayed int
	logs                                   []*kgo.Record

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
	g := &trafficGen{r: rand.New(rand.NewPCG(2026, 11)), enc: enc, t: t, now: now, tr: &traffic{}}
	auths, err := g.authorizations(n)
	if err != nil {
		return nil, err
	}
	for _, step := range []func() error{
		func() error { return g.retries(auths) },
		func() error { return g.linked(auths, n) },
		func() error { return g.invalid(n + 4) },
		g.malformed,
		func() error { return g.jsonPayment(n + 7) },
	} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	g.logs(n)
	return g.tr, nil
}

// trafficGen builds one traffic, step by step, from one random source.
type trafficGen struct {
	r   *rand.Rand
	enc encoder
	t   config.Topics
	now time.Time
	tr  *traffic
}

func (g *trafficGen) add(p schemas.RawPayment) error {
	b, err := g.enc.Encode(&p)
	if err != nil {
		return err
	}
	g.tr.payments = append(g.tr.payments, &kgo.Record{Topic: g.t.PaymentsRaw, Key: []byte(p.IdempotencyKey), Value: b})
	return nil
}

func str(s string) *string { return &s }

// payment is valid payment number i on network nw.
func (g *trafficGen) payment(i int, nw pan.Network) schemas.RawPayment {
	ls := pantest.Lengths(nw)
	digits := pantest.Generate(g.r, nw, ls[len(ls)-1])
	return schemas.RawPayment{
		PaymentID:      fmt.Sprintf("pay-%05d", i),
		IdempotencyKey: fmt.Sprintf("idem-%05d", i),
		EventType:      schemas.Authorization,
		PAN:            string(digits),
		ExpiryMonth:    12,
		ExpiryYear:     int32(g.now.Year() + 2),
		CVV:            str(fmt.Sprintf("%03d", g.r.IntN(1000))),
		CardholderName: str("Jane Q. Cardholder"),
		AmountMinor:    int64(100 + g.r.IntN(100000)),
		Currency:       []string{"EUR", "USD", "GBP", "JPY"}[i%4],
		MerchantID:     fmt.Sprintf("merchant-%02d", i%7),
		OccurredAt:     g.now.Add(time.Duration(i) * time.Second).UnixMilli(),
	}
}

// authorizations adds n valid authorizations across every network.
func (g *trafficGen) authorizations(n int) ([]schemas.RawPayment, error) {
	var auths []schemas.RawPayment
	for i := 0; i < n; i++ {
		p := g.payment(i, networks[i%len(networks)])
		auths = append(auths, p)
		g.tr.viaHTTP = append(g.tr.viaHTTP, p)
		g.tr.wantTokenized++
	}
	// Webhook retries through the gateway: answered from its
	// Idempotency-Key state, nothing produced.
	for i := 0; i < 5 && i < len(auths); i++ {
		g.tr.viaHTTP = append(g.tr.viaHTTP, auths[i])
		g.tr.retries++
	}
	return auths, nil
}

// retries adds webhook retries straight to Kafka: same idempotency key, new
// offset.
func (g *trafficGen) retries(auths []schemas.RawPayment) error {
	for i := 0; i < 5 && i < len(auths); i++ {
		if err := g.add(auths[i]); err != nil {
			return err
		}
		g.tr.retries++
	}
	return nil
}

// linked adds a split payment, a refund and a chargeback, linked to their
// parents, numbered from next.
func (g *trafficGen) linked(auths []schemas.RawPayment, next int) error {
	for _, l := range []struct {
		parent int
		et     schemas.EventType
	}{{0, schemas.SplitChild}, {0, schemas.SplitChild}, {1, schemas.Refund}, {2, schemas.Chargeback}} {
		c := auths[l.parent]
		c.PaymentID = fmt.Sprintf("pay-%05d", next)
		c.IdempotencyKey = fmt.Sprintf("idem-%05d", next)
		c.EventType = l.et
		c.ParentPaymentID = str(auths[l.parent].PaymentID)
		c.AmountMinor = auths[l.parent].AmountMinor / 2
		next++
		g.tr.wantTokenized++
		// Through the gateway, like the authorizations.
		g.tr.viaHTTP = append(g.tr.viaHTTP, c)
	}
	return nil
}

// invalid adds payments the tokenizer must dead-letter: a Luhn failure, an
// expired card, a zero amount.
func (g *trafficGen) invalid(next int) error {
	bad := g.payment(next, pan.Visa)
	last := bad.PAN[len(bad.PAN)-1]
	bad.PAN = bad.PAN[:len(bad.PAN)-1] + string('0'+(last-'0'+1)%10)
	expired := g.payment(next+1, pan.Mastercard)
	expired.ExpiryYear = int32(g.now.Year() - 1)
	noAmount := g.payment(next+2, pan.Amex)
	noAmount.AmountMinor = 0
	for _, p := range []schemas.RawPayment{bad, expired, noAmount} {
		if err := g.add(p); err != nil {
			return err
		}
		g.tr.wantPaymentDLQ++
	}
	return nil
}

// malformed adds malformed Avro, an unknown schema id and binary junk.
func (g *trafficGen) malformed() error {
	g.tr.payments = append(g.tr.payments,
		&kgo.Record{Topic: g.t.PaymentsRaw, Key: []byte("junk-1"), Value: []byte{0, 0, 0, 0, 1, 0xff, 0xff, 0xff}},
		&kgo.Record{Topic: g.t.PaymentsRaw, Key: []byte("junk-2"), Value: append([]byte{0, 0, 0, 0x7f, 0x7f}, []byte("4111111111111111")...)},
		&kgo.Record{Topic: g.t.PaymentsRaw, Key: []byte("junk-3"), Value: []byte{0x89, 'P', 'N', 'G', 0, 1, 2, 3}},
	)
	g.tr.wantPaymentDLQ += 3
	return nil
}

// jsonPayment adds a payment in the documented JSON alternative.
func (g *trafficGen) jsonPayment(i int) error {
	jp := g.payment(i, pan.Visa)
	jp.PaymentID, jp.IdempotencyKey = "pay-json", "idem-json"
	jb, err := json.Marshal(jp)
	if err != nil {
		return err
	}
	g.tr.payments = append(g.tr.payments, &kgo.Record{Topic: g.t.PaymentsRaw, Key: []byte(jp.IdempotencyKey), Value: jb})
	g.tr.wantTokenized++
	return nil
}

// logs adds n log lines with PANs in text, JSON, URLs, XML and headers, n
// clean lines, binary junk, and one record over the size limit.
func (g *trafficGen) logs(n int) {
	styles := pantest.Styles()
	ts := g.now.Format(time.RFC3339)
	for i := 0; i < n; i++ {
		nw := networks[i%len(networks)]
		p := pantest.Format(pantest.Generate(g.r, nw, pantest.Lengths(nw)[0]), styles[i%len(styles)])
		rec := &kgo.Record{Topic: g.t.LogsRaw, Value: []byte(logLine(i, ts, p))}
		if i%10 == 0 {
			rec.Headers = []kgo.RecordHeader{{Key: "x-card", Value: []byte(p)}}
			g.tr.pansInLogs++
		}
		g.tr.logs = append(g.tr.logs, rec)
		g.tr.pansInLogs++
		g.tr.logs = append(g.tr.logs, &kgo.Record{Topic: g.t.LogsRaw, Value: []byte(fmt.Sprintf("%s INFO health ok latency_ms=%d build=1.4.%d", ts, g.r.IntN(90), i))})
		g.tr.wantSanitized += 2
	}
	junk := make([]byte, 512)
	for i := range junk {
		junk[i] = byte(g.r.IntN(256))
	}
	g.tr.logs = append(g.tr.logs, &kgo.Record{Topic: g.t.LogsRaw, Value: junk})
	g.tr.wantSanitized++
	big := bytes.Repeat([]byte("x"), 600<<10) // over the demo masker's 512 KiB limit, under Kafka's 1 MiB
	copy(big[1000:], pantest.Generate(g.r, pan.Visa, 16))
	g.tr.logs = append(g.tr.logs, &kgo.Record{Topic: g.t.LogsRaw, Value: big})
	g.tr.wantLogDLQ++
}

// logLine is log line i carrying the formatted PAN p, in one of five shapes.
func logLine(i int, ts, p string) string {
	switch i % 5 {
	case 0:
		return fmt.Sprintf(`%s INFO checkout completed order=%d card=%s`, ts, 100000+i, p)
	case 1:
		return fmt.Sprintf(`{"level":"warn","msg":"retrying charge","card_number":"%s","attempt":2}`, p)
	case 2:
		return fmt.Sprintf(`GET /v1/charge?pan=%s&amount=1200 HTTP/1.1`, p)
	case 3:
		return fmt.Sprintf(`<payment><id>%d</id><pan>%s</pan></payment>`, i, p)
	default:
		return fmt.Sprintf(`debug: card %s declined (issuer timeout)`, p)
	}
}
