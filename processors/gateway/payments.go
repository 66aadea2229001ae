package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/processors/tokenizer"
)

// IdempotencyKeyHeader is the request header carrying the idempotency key.
const IdempotencyKeyHeader = "Idempotency-Key"

// ReplayedHeader is set on answers replayed from a key's first response.
const ReplayedHeader = "Idempotent-Replayed"

// accepted is the 202 body of POST /v1/payments: no card data beyond the
// brand and the last four digits (displayable under every truncation
// policy).
type accepted struct {
	Status    string `json:"status"`
	PaymentID string `json:"payment_id"`
	ContextID string `json:"context_id"`
	Brand     string `json:"brand"`
	Last4     string `json:"last4"`
}

// payments serves POST /v1/payments.
func (g *Gateway) payments(w http.ResponseWriter, r *http.Request) result {
	now := g.cfg.now()
	var q paymentRequest
	buf := g.bodies.get()
	in, derr := readJSON(r, g.cfg.maxBody, buf.b)
	if derr == nil {
		derr = decodePayment(in, &q)
	}
	g.bodies.put(buf, in)
	if derr != nil {
		return g.fail(w, derr)
	}
	defer clearRequest(&q)
	hdrKey := r.Header.Get(IdempotencyKeyHeader)
	if e := checkID(g.det, IdempotencyKeyHeader, hdrKey, false); e != nil {
		return g.fail(w, e)
	}
	p, e := q.toRaw(g.det, hdrKey, now)
	if e != nil {
		return g.fail(w, e)
	}
	chk, rej := tokenizer.ValidatePayment(&p, nil, now)
	if rej != nil {
		return g.fail(w, &apiError{Status: http.StatusUnprocessableEntity, Code: rej.Code, Message: rej.Message})
	}
	// The tokenizer dedups by idempotency key, else by payment id: the
	// gateway uses the same key, for its state and as the record key.
	key := hdrKey
	if key == "" {
		key = p.PaymentID
	}
	version := g.kr.Current()
	fp, err := g.requestFingerprint(version, &q)
	if err != nil {
		return g.unavailable(w, "keyring", "the keyring cannot fingerprint the request")
	}

	// The commit deadline, shared with the requests of the same few
	// milliseconds (deadlines).
	ctx := g.deadlines.get()
	// One request per key at a time in this instance, and the key stays
	// held until its transaction's outcome is final, even after its
	// request gave up (503): a retry waits for (or replays) the first
	// instead of racing a slow commit with a second write.
	if err := g.keys.lock(ctx, key); err != nil {
		return g.unavailable(w, "in_progress", "an earlier request with this Idempotency-Key is still in progress; retry")
	}
	handedOff := false
	defer func() {
		if !handedOff {
			g.keys.unlock(key)
		}
	}()
	// A key this instance knows is answered at once; one it does not know
	// is checked again by the committer, against everything committed by
	// any instance before the request was queued (StateStore).
	kb := []byte(key) // records do not modify their keys: one copy for all
	prev, ok, err := g.idem.Find(kb, now)
	if err != nil {
		return g.unavailable(w, "state_unavailable", "the idempotency state could not be read; retry")
	}
	if ok {
		return g.replay(w, &q, prev, fp)
	}

	// The CVV was validated; it goes no further than this process.
	p.CVV = nil
	val, err := g.serde.Encode(&p)
	if err != nil {
		return g.unavailable(w, "encode", "the raw payment could not be encoded (schema registry?)")
	}
	// The 202 body is rendered inside the idempotency entry that replays
	// it: one buffer for both (neither is written to after this).
	entry := IdemEntry{Fingerprint: fp, KeyVersion: version, TS: now.UnixMilli(), Status: http.StatusAccepted}
	ev := entry.appendHead(make([]byte, 0, 384))
	start := len(ev)
	ev = appendAccepted(ev, p.PaymentID, chk.ContextID, chk.Network.String(), chk.Last4)
	body := ev[start:len(ev):len(ev)]
	ev = append(ev, '}')
	handedOff = true
	err = g.commit.Commit(ctx, Write{Recs: []*kgo.Record{
		{Topic: g.cfg.topics.PaymentsRaw, Key: kb, Value: val, Timestamp: now},
		{Topic: g.cfg.topics.GatewayIdempotency, Key: kb, Value: ev, Timestamp: now},
	}, Key: kb, Now: now, Settled: func(error) { g.keys.unlock(key) }})
	// val is not cleared: after a timeout the committer may still hold it.
	return g.answerCommit(w, err, &q, fp, body, chk.ContextID)
}

// answerCommit answers a payment after the committer's outcome err: 202
// with body, a replay or 409 when the committer found the key committed by
// an earlier request this instance had not read yet, or 503.
func (g *Gateway) answerCommit(w http.ResponseWriter, err error, q *paymentRequest, fp string, body []byte, contextID string) result {
	var exists *KeyExistsError
	switch {
	case err == nil:
		writeJSON(w, http.StatusAccepted, body)
		return result{status: http.StatusAccepted, contextID: contextID}
	case errors.As(err, &exists):
		return g.replay(w, q, exists.Entry, fp)
	case errors.Is(err, errStateUnavailable):
		return g.unavailable(w, "state_unavailable", "the idempotency state could not be read up to date; retry")
	}
	res := g.unavailable(w, "kafka_unavailable", "the payment was not durably accepted; retry with the same Idempotency-Key")
	res.contextID = contextID
	return res
}

// replay answers a retry: the first response when the request is the same,
// 409 when the key was used for another request.
func (g *Gateway) replay(w http.ResponseWriter, q *paymentRequest, prev IdemEntry, fp string) result {
	if prev.KeyVersion != g.kr.Current() {
		// The first request was fingerprinted under an older key version.
		var err error
		if fp, err = g.requestFingerprint(prev.KeyVersion, q); err != nil {
			return g.fail(w, &apiError{Status: http.StatusConflict, Code: "idempotency_key_reused",
				Message: "this Idempotency-Key was used under a retired key version; use a new key"})
		}
	}
	if fp != prev.Fingerprint {
		return g.fail(w, &apiError{Status: http.StatusConflict, Code: "idempotency_key_reused",
			Message: "this Idempotency-Key was already used with a different request"})
	}
	var a accepted
	json.Unmarshal(prev.Body, &a) //nolint:errcheck // only for the context id of the log line
	g.m.replays.Inc()
	w.Header().Set(ReplayedHeader, "true")
	writeJSON(w, prev.Status, prev.Body)
	return result{status: prev.Status, contextID: a.ContextID}
}

// requestFingerprint fingerprints q with its PAN tokenized under version.
func (g *Gateway) requestFingerprint(version uint32, q *paymentRequest) (string, error) {
	n, digits, rej := tokenizer.CheckPAN(make([]byte, 0, 32), q.PAN)
	defer clear(digits)
	if rej != nil || n == 0 {
		return "", errors.New("invalid PAN")
	}
	tok, err := g.kr.TokenizeVersion(version, digits)
	if err != nil {
		return "", err
	}
	return fingerprint(tok, q), nil
}

// clearRequest drops the request's references to card data as soon as the
// handler is done (Go strings cannot be zeroed; this shortens their life).
func clearRequest(q *paymentRequest) {
	q.PAN, q.CVV, q.CardholderName = "", nil, nil
}

// keyLocks serialises requests per idempotency key.
type keyLocks struct {
	mu   sync.Mutex
	held map[string]chan struct{}
}

func newKeyLocks() *keyLocks { return &keyLocks{held: map[string]chan struct{}{}} }

// lock waits until key is free or ctx ends.
func (k *keyLocks) lock(ctx context.Context, key string) error {
	for {
		k.mu.Lock()
		ch, busy := k.held[key]
		if !busy {
			k.held[key] = make(chan struct{})
			k.mu.Unlock()
			return nil
		}
		k.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (k *keyLocks) unlock(key string) {
	k.mu.Lock()
	ch := k.held[key]
	delete(k.held, key)
	k.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// acceptedJSON renders the 202 body (the accepted type) without reflection:
// it is on every payment's path.
func acceptedJSON(paymentID, contextID, brand, last4 string) []byte {
	return appendAccepted(make([]byte, 0, 160), paymentID, contextID, brand, last4)
}

// appendAccepted appends the 202 body to b.
func appendAccepted(b []byte, paymentID, contextID, brand, last4 string) []byte {
	b = append(b, `{"status":"accepted","payment_id":`...)
	b = strconv.AppendQuote(b, paymentID)
	b = append(b, `,"context_id":`...)
	b = strconv.AppendQuote(b, contextID)
	b = append(b, `,"brand":`...)
	b = strconv.AppendQuote(b, brand)
	b = append(b, `,"last4":`...)
	b = strconv.AppendQuote(b, last4)
	return append(b, '}')
}
