package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/schemas"
)

// testCVV is the test card's CVV: the tokenizer must never store it.
const testCVV = "737"

// tokenizerWorkers starts two `pcistream run tokenizer` workers on e's
// payment topics with a fresh keyring and a state dir each (kept across
// their restarts), and waits until they are ready.
func (e *env) tokenizerWorkers(ctx context.Context, dir string) ([]*worker, error) {
	keyring := filepath.Join(dir, "keyring.json")
	if out, err := exec.Command(e.p.bin, "keys", "init", "--keyring", keyring).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("keys init: %v: %s", err, out)
	}
	tp := e.n.tp
	var ws []*worker
	for i := 0; i < e.p.workers; i++ {
		port, err := freePort()
		if err != nil {
			return ws, err
		}
		w := &worker{name: fmt.Sprintf("tokenizer-%d", i), bin: e.p.bin, logDir: dir, metrics: port,
			args: []string{"run", "tokenizer", "--brokers", e.brokers, "--registry-url", e.dev.registryURL(),
				"--keyring", keyring, "--state-dir", filepath.Join(dir, fmt.Sprintf("state-%d", i)),
				"--group", e.n.prefix + "rel-tokenizer", "--transactional-id", fmt.Sprintf("%srel-tokenizer-%d", e.n.prefix, i),
				"--session-timeout", e.p.session.String(),
				"--topic-payments-raw", tp.PaymentsRaw, "--topic-payments-tokenized", tp.PaymentsTokenized,
				"--topic-payments-dlq", tp.PaymentsDLQ, "--topic-audit-events", tp.AuditEvents,
				"--topic-vault", tp.Vault, "--topic-idempotency", tp.Idempotency}}
		if err := w.start(); err != nil {
			return ws, err
		}
		ws = append(ws, w)
	}
	for _, w := range ws {
		if err := waitReady(ctx, w, 3*time.Minute); err != nil {
			return ws, err
		}
	}
	return ws, nil
}

// payments encodes payment id as an Avro RawPayment carrying the test PAN
// and CVV, keyed by its idempotency key.
func payments(serde *schemas.Serde) func(int64) ([]byte, []byte) {
	cvv, name := testCVV, "Jane Q Cardholder"
	return func(id int64) ([]byte, []byte) {
		p := &schemas.RawPayment{PaymentID: fmt.Sprintf("pay-%09d", id), IdempotencyKey: fmt.Sprintf("idem-%09d", id),
			EventType: schemas.Authorization, PAN: testPAN, ExpiryMonth: 12, ExpiryYear: 2030, CVV: &cvv,
			CardholderName: &name, AmountMinor: 1999, Currency: "EUR", MerchantID: "m-1",
			OccurredAt: time.Now().UnixMilli()}
		v, err := serde.Encode(p)
		if err != nil {
			panic(fmt.Sprintf("encoding a payment: %v", err)) // the schemas are registered: a bug
		}
		return []byte(p.IdempotencyKey), v
	}
}

// tokenizerKills SIGKILLs a tokenizer worker (round robin) at even
// intervals under load and restarts it at once on its state dir, and checks
// that every payment is tokenized exactly once with exactly one tokenize
// audit event, and that no PAN or CVV reaches an output topic.
func tokenizerKills(ctx context.Context, p params) row {
	r := row{name: "tokenizer SIGKILL + restart", events: p.events, kills: p.kills, faults: fmt.Sprintf("%d × SIGKILL of a tokenizer worker (state dir kept)", p.kills)}
	name := "tokenizer-kills"
	if p.kills == 0 {
		r.name, r.faults, name = "tokenizer clean (baseline)", "none", "tokenizer-clean"
	}
	e, err := setupWith(ctx, p, name, 0)
	if err != nil {
		r.err = err
		return r
	}
	defer e.close()
	dir := filepath.Join(p.dir, name)
	ws, err := e.tokenizerWorkers(ctx, dir)
	defer func() {
		for _, w := range ws {
			w.kill(syscall.SIGTERM)
		}
	}()
	if err != nil {
		r.err = err
		return r
	}
	serde, err := schemas.Open(ctx, config.Registry{URL: e.dev.registryURL()}, e.n.tp)
	if err != nil {
		r.err = err
		return r
	}
	start := time.Now()
	pr, err := startProducerWith(e.brokers, e.n.tp.PaymentsRaw, p.rate, p.events, payments(serde))
	if err != nil {
		r.err = err
		return r
	}
	var last time.Time
	for k := 0; k < p.kills && ctx.Err() == nil; k++ {
		pr.waitProduced(ctx, int64(p.events*8/10*(k+1)/(p.kills+1)))
		w := ws[k%len(ws)]
		w.kill(syscall.SIGKILL)
		last = time.Now()
		if err := w.start(); err != nil {
			r.err = err
			return r
		}
		raw := e.n.tp.PaymentsRaw
		if at, ok := w.waitBack(ctx, func() bool { return lagOf(ctx, e.brokers, e.n.prefix+"rel-tokenizer", raw) == 0 }, 2*time.Minute); ok {
			r.recovery = append(r.recovery, at.Sub(last))
		} else {
			r.err = fmt.Errorf("%s did not commit within 2m of its restart while input waited", w.name)
			break
		}
		p.log("  tokenizer kill %d/%d: %s committing again after %s", k+1, p.kills, w.name, r.recovery[len(r.recovery)-1].Round(time.Millisecond))
	}
	if err := pr.finish(ctx); err != nil && r.err == nil {
		r.err = err
	}
	if err := waitTokenized(ctx, e.brokers, e.n.tp.PaymentsTokenized, int(pr.acked.Load()), 5*time.Minute); err != nil && r.err == nil {
		r.err = err
	}
	r.elapsed = time.Since(start)
	if !last.IsZero() {
		r.drain = time.Since(last)
	}
	r.throughput = float64(pr.acked.Load()) / r.elapsed.Seconds()
	t, err := checkTokenized(ctx, e.brokers, e.n.tp, serde, int(pr.acked.Load()))
	r.t = t
	if r.err == nil {
		r.err = err
	}
	for _, w := range ws {
		w.alive()
		w.mu.Lock()
		r.exits = append(r.exits, w.exitErrs...)
		w.mu.Unlock()
	}
	r.exits = append(r.exits, e.unexpected()...)
	return r
}

// waitTokenized waits until the tokenized topic holds n records
// read_committed (its end offsets include transaction markers, so the
// group's lag cannot say it is drained).
func waitTokenized(ctx context.Context, brokers, topic string, n int, limit time.Duration) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %d of %d payments tokenized after %s", topic, got, n, limit)
		}
		got += fs.NumRecords()
	}
	return nil
}

// checkTokenized counts, against the n payments produced, lost and
// duplicated tokenized payments (by payment id), duplicated tokenize audit
// events (by audit record key, and more than one per payment context), and
// output, audit, DLQ and vault records holding the test PAN in clear. (The
// three-digit CVV is not scanned for: random bytes match it by chance.)
func checkTokenized(ctx context.Context, brokers string, tp config.Topics, serde *schemas.Serde, n int) (tally, error) {
	var t tally
	var mu sync.Mutex
	seen := map[string]int{}
	var decodeErr error
	leak := func(b []byte) bool { return strings.Contains(string(b), testPAN) }
	err := readAll(ctx, brokers, tp.PaymentsTokenized, func(r *kgo.Record) {
		var out schemas.TokenizedPayment
		if err := serde.Decode(ctx, r.Value, &out); err != nil {
			mu.Lock()
			decodeErr = err
			mu.Unlock()
			return
		}
		t.outputs++
		seen[out.PaymentID]++
		if leak(r.Value) {
			t.leaked++
		}
	})
	if err != nil {
		return t, err
	}
	if decodeErr != nil {
		return t, fmt.Errorf("decoding %s: %w", tp.PaymentsTokenized, decodeErr)
	}
	for i := 0; i < n; i++ {
		c := seen[fmt.Sprintf("pay-%09d", i)]
		switch {
		case c == 0:
			t.lost++
		case c > 1:
			t.dup += c - 1
		}
		if c > 0 {
			t.distinct++
		}
	}
	ids := map[string]int{}
	perPayment := map[string]int{}
	err = readAll(ctx, brokers, tp.AuditEvents, func(r *kgo.Record) {
		t.audits++
		ids[string(r.Key)]++
		if leak(r.Value) {
			t.leaked++
		}
		var ev schemas.AuditEvent
		if serde.Decode(ctx, r.Value, &ev) == nil && ev.Action == "tokenize" {
			perPayment[ev.Subject]++
		}
	})
	if err != nil {
		return t, err
	}
	for _, c := range ids {
		t.auditDup += c - 1
	}
	for _, c := range perPayment {
		t.auditDup += max(0, c-1)
	}
	if len(perPayment) != t.distinct {
		return t, fmt.Errorf("%d tokenize audit events for %d tokenized payments", len(perPayment), t.distinct)
	}
	for _, topic := range []string{tp.PaymentsDLQ, tp.Vault} {
		if err := readAll(ctx, brokers, topic, func(r *kgo.Record) {
			if leak(r.Value) || leak(r.Key) {
				t.leaked++
			}
		}); err != nil {
			return t, err
		}
	}
	return t, nil
}
