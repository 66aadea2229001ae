package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/pcistream/pcistream/processors/tokenizer"
	"github.com/pcistream/pcistream/schemas"
)

// tokenizeRequest is the body of POST /v1/tokenize.
type tokenizeRequest struct {
	PAN string `json:"pan"`
}

// tokenized is the answer of POST /v1/tokenize.
type tokenized struct {
	Token      string `json:"token"`
	KeyVersion int32  `json:"key_version"`
	Brand      string `json:"brand"`
	Last4      string `json:"last4"`
}

// authorize authenticates r and checks role; the answer on failure is 401
// or 403.
func (g *Gateway) authorize(r *http.Request, role string) (Principal, *apiError) {
	if g.cfg.auth == nil {
		return Principal{}, &apiError{Status: http.StatusUnauthorized, Code: "unauthenticated", Message: "this gateway has no authentication configured for this API"}
	}
	p, err := g.cfg.auth.Authenticate(r)
	if err != nil {
		return Principal{}, &apiError{Status: http.StatusUnauthorized, Code: "unauthenticated", Message: err.Error()}
	}
	if !p.Has(role) {
		return Principal{}, &apiError{Status: http.StatusForbidden, Code: "forbidden", Message: "the caller lacks the " + role + " role"}
	}
	return p, nil
}

// tokenize serves POST /v1/tokenize: the token is returned only after its
// vault entry and audit event are committed to Kafka. It needs the tokenize
// role: an open tokenize API would be an oracle from PANs to tokens.
func (g *Gateway) tokenize(w http.ResponseWriter, r *http.Request) result {
	who, e := g.authorize(r, RoleTokenize)
	if e != nil {
		return g.fail(w, e)
	}
	var q tokenizeRequest
	if e := decodeStrict(r, g.cfg.maxBody, &q); e != nil {
		return g.fail(w, e)
	}
	network, digits, rej := tokenizer.CheckPAN(make([]byte, 0, 32), q.PAN)
	q.PAN = ""
	defer clear(digits)
	if rej != nil {
		return g.fail(w, &apiError{Status: http.StatusUnprocessableEntity, Code: rej.Code, Message: rej.Message, Field: "pan"})
	}
	now := g.cfg.now()
	tok, ve, err := tokenizer.SealVaultEntry(r.Context(), g.kr, g.vault, digits, now)
	if err != nil {
		return g.unavailable(w, "keyring", "the token could not be computed (keyring or KMS)")
	}
	vv, err := g.serde.Encode(&ve)
	if err != nil {
		return g.unavailable(w, "encode", "the vault entry could not be encoded (schema registry?)")
	}
	ev := schemas.AuditEvent{
		Time: now.UnixMilli(), Actor: Name + ":" + who.Name, Action: "tokenize", Outcome: "ok",
		Topic: g.cfg.topics.Vault, Subject: tok, Attrs: map[string]string{"key_version": strconv.Itoa(int(ve.KeyVersion)), "api": "http"},
	}
	h := sha256.Sum256([]byte(ev.Actor + "|tokenize|" + tok + "|" + strconv.FormatInt(now.UnixNano(), 10)))
	ev.ID = hex.EncodeToString(h[:])[:32]
	av, err := tokenizer.EncodeAudit(g.serde, ev)
	if err != nil {
		return g.unavailable(w, "encode", "the audit event could not be encoded (schema registry?)")
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.commitTimeout)
	defer cancel()
	if err := g.commit.Commit(ctx, Write{Recs: []*kgo.Record{
		{Topic: g.cfg.topics.Vault, Key: []byte(tok), Value: vv, Timestamp: now},
		{Topic: g.cfg.topics.AuditEvents, Key: []byte(ev.ID), Value: av, Timestamp: now},
	}}); err != nil {
		return g.unavailable(w, "kafka_unavailable", "the vault entry was not durably written; retry")
	}
	body, _ := json.Marshal(tokenized{Token: tok, KeyVersion: ve.KeyVersion, Brand: network.String(), Last4: string(digits[len(digits)-4:])})
	writeJSON(w, http.StatusOK, body)
	return result{status: http.StatusOK}
}

// detokenizeRequest is the body of POST /v1/detokenize.
type detokenizeRequest struct {
	Token  string `json:"token"`
	Reason string `json:"reason"`
}

// detokenize serves POST /v1/detokenize through the tokenizer's Detokenizer,
// which writes the audit event before it returns the PAN.
func (g *Gateway) detokenize(w http.ResponseWriter, r *http.Request) result {
	who, e := g.authorize(r, RoleDetokenize)
	if e != nil {
		return g.fail(w, e)
	}
	if !g.limits.allow(who.Name) {
		w.Header().Set("Retry-After", "1")
		return g.fail(w, &apiError{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: "detokenize rate limit reached for this caller"})
	}
	var q detokenizeRequest
	if e := decodeStrict(r, g.cfg.maxBody, &q); e != nil {
		return g.fail(w, e)
	}
	if g.detok == nil {
		return g.unavailable(w, "detokenize_disabled", "detokenize is not configured on this gateway")
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	pan, err := g.detok.Detokenize(ctx, tokenizer.DetokenizeRequest{Token: q.Token, Reason: q.Reason, Actor: Name + ":" + who.Name})
	defer clear(pan)
	switch {
	case errors.Is(err, tokenizer.ErrRefused):
		// The refusal texts name the failed rule, never the token's data.
		return g.fail(w, &apiError{Status: http.StatusBadRequest, Code: "refused", Message: "refused: give a valid token and a reason of at least 8 characters"})
	case errors.Is(err, tokenizer.ErrNotInVault):
		return g.fail(w, &apiError{Status: http.StatusNotFound, Code: "not_in_vault", Message: "the vault holds no entry for this token"})
	case err != nil:
		return g.unavailable(w, "detokenize_failed", "the vault or the audit trail is unavailable; nothing was revealed")
	}
	body := make([]byte, 0, 64)
	body = append(body, `{"pan":"`...)
	body = append(body, pan...)
	body = append(body, `"}`...)
	writeJSON(w, http.StatusOK, body)
	clear(body)
	return result{status: http.StatusOK}
}

// limiters are per-caller token buckets for detokenize.
type limiters struct {
	mu    sync.Mutex
	every rate.Limit
	burst int
	m     map[string]*rate.Limiter
}

func newLimiters(every rate.Limit, burst int) *limiters {
	return &limiters{every: every, burst: burst, m: map[string]*rate.Limiter{}}
}

func (l *limiters) allow(who string) bool {
	l.mu.Lock()
	lim, ok := l.m[who]
	if !ok {
		lim = rate.NewLimiter(l.every, l.burst)
		l.m[who] = lim
	}
	l.mu.Unlock()
	return lim.Allow()
}
