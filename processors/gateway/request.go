package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/schemas"
)

// paymentRequest is the body of POST /v1/payments. Field names are those of
// the raw payment schema; unknown fields are rejected.
type paymentRequest struct {
	PaymentID       string            `json:"payment_id"`
	EventType       string            `json:"event_type"`
	ParentPaymentID *string           `json:"parent_payment_id,omitempty"`
	PAN             string            `json:"pan"`
	ExpiryMonth     *int32            `json:"expiry_month"`
	ExpiryYear      *int32            `json:"expiry_year"`
	CVV             *string           `json:"cvv,omitempty"`
	CardholderName  *string           `json:"cardholder_name,omitempty"`
	AmountMinor     *int64            `json:"amount_minor"`
	Currency        string            `json:"currency"`
	MerchantID      string            `json:"merchant_id"`
	OccurredAt      int64             `json:"occurred_at,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
}

// Limits of the payload. They keep a body small and a metric or a record key
// bounded; they are far above what payments need.
const (
	maxIDLen        = 128
	maxNameLen      = 128
	maxMetadata     = 32
	maxMetaKeyLen   = 64
	maxMetaValueLen = 256
)

// apiError is an error response: a stable code, a message that never holds
// request data, and the field it is about.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func badRequest(code, field, msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: code, Field: field, Message: msg}
}

// decodeStrict decodes exactly one JSON object of at most limit bytes into
// v, rejecting unknown fields and trailing data. Its errors never quote the
// input: encoding/json's messages can hold request values (a number that was
// a PAN), so only the field name and offset are kept.
func decodeStrict(r *http.Request, limit int64, v any) *apiError {
	body, e := readJSON(r, limit, nil)
	defer clear(body)
	if e != nil {
		return e
	}
	return decodeJSON(body, v)
}

// readJSON checks the content type and reads the body, at most limit
// bytes, into buf when it is large enough. The caller clears the body.
func readJSON(r *http.Request, limit int64, buf []byte) ([]byte, *apiError) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !hasJSONPrefix(ct) {
		return nil, &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "send application/json"}
	}
	body, err := readBody(r, limit, buf)
	if err != nil {
		return body, badRequest("unreadable_body", "", "the request body could not be read")
	}
	if int64(len(body)) > limit {
		return body, &apiError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Message: fmt.Sprintf("the body is limited to %d bytes", limit)}
	}
	return body, nil
}

// hasJSONPrefix is strings.HasPrefix(strings.ToLower(ct),
// "application/json") without the copy.
func hasJSONPrefix(ct string) bool {
	const want = "application/json"
	return len(ct) >= len(want) && strings.EqualFold(ct[:len(want)], want)
}

// decodeJSON is the encoding/json strict decoding of body into v: one
// value, no unknown field, nothing after it.
func decodeJSON(body []byte, v any) *apiError {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return badRequest("malformed_json", "", "the body must be one JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("malformed_json", "", "the body must be one JSON object")
	}
	return nil
}

// readBody reads at most limit+1 bytes of r's body, into buf or one
// allocation of the announced length when there is one (the net/http
// server stops a body at its Content-Length).
func readBody(r *http.Request, limit int64, buf []byte) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= limit {
		body := buf[:0]
		if int64(cap(buf)) >= n {
			body = buf[:n]
		} else {
			body = make([]byte, n)
		}
		_, err := io.ReadFull(r.Body, body)
		return body, err
	}
	return io.ReadAll(io.LimitReader(r.Body, limit+1))
}

func jsonError(err error) *apiError {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return badRequest("malformed_json", "", fmt.Sprintf("invalid JSON at byte %d", se.Offset))
	case errors.As(err, &te):
		return badRequest("schema_violation", safeField(te.Field), "wrong type: want "+te.Type.String())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest("schema_violation", safeField(name), "unknown field")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed_json", "", "the body is empty or truncated")
	}
	return badRequest("malformed_json", "", "the body is not a JSON object of the documented shape")
}

// safeField returns a field name fit to echo: short, and with anything but
// ASCII letters and _.-[] starred. A client can put anything in a key, a
// PAN included, in any script or encoding (fullwidth or Arabic-Indic
// digits, escapes), and the schema's own names need nothing else.
func safeField(s string) string {
	b := make([]byte, 0, min(len(s), 64))
	for _, r := range s {
		if len(b) == cap(b) {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_', r == '.', r == '-', r == '[', r == ']':
			b = append(b, byte(r))
		default:
			b = append(b, '*')
		}
	}
	return string(b)
}

// checkID validates an identifier: 1 to 128 characters of letters, digits
// and ._:-, and no card number in it (ids become record keys and audit
// subjects).
func checkID(det *pan.Detector, field, s string, required bool) *apiError {
	if s == "" {
		if required {
			return badRequest("schema_violation", field, "required")
		}
		return nil
	}
	if len(s) > maxIDLen {
		return badRequest("schema_violation", field, fmt.Sprintf("at most %d characters", maxIDLen))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return badRequest("schema_violation", field, "only letters, digits and . _ : - are allowed")
		}
	}
	if det.ContainsString(s) {
		return badRequest("card_data_in_field", field, "must not contain a card number")
	}
	return nil
}

// toRaw checks the payload's schema (required fields, sizes, no card data
// outside the PAN field) and returns the raw payment event. The CVV is
// carried only for validation: the caller drops it before anything is
// written.
func (q *paymentRequest) toRaw(det *pan.Detector, idemKey string, now time.Time) (schemas.RawPayment, *apiError) {
	for _, c := range []struct {
		field, v string
		req      bool
	}{{"payment_id", q.PaymentID, true}, {"merchant_id", q.MerchantID, true}} {
		if e := checkID(det, c.field, c.v, c.req); e != nil {
			return schemas.RawPayment{}, e
		}
	}
	if q.ParentPaymentID != nil {
		if e := checkID(det, "parent_payment_id", *q.ParentPaymentID, true); e != nil {
			return schemas.RawPayment{}, e
		}
	}
	switch {
	case q.PAN == "":
		return schemas.RawPayment{}, badRequest("schema_violation", "pan", "required")
	case q.ExpiryMonth == nil:
		return schemas.RawPayment{}, badRequest("schema_violation", "expiry_month", "required")
	case q.ExpiryYear == nil:
		return schemas.RawPayment{}, badRequest("schema_violation", "expiry_year", "required")
	case q.AmountMinor == nil:
		return schemas.RawPayment{}, badRequest("schema_violation", "amount_minor", "required")
	case q.Currency == "":
		return schemas.RawPayment{}, badRequest("schema_violation", "currency", "required")
	case q.EventType == "":
		return schemas.RawPayment{}, badRequest("schema_violation", "event_type", "required")
	case q.OccurredAt < 0:
		return schemas.RawPayment{}, badRequest("schema_violation", "occurred_at", "Unix milliseconds, not negative")
	}
	if q.CardholderName != nil {
		if len(*q.CardholderName) > maxNameLen {
			return schemas.RawPayment{}, badRequest("schema_violation", "cardholder_name", fmt.Sprintf("at most %d characters", maxNameLen))
		}
		if det.ContainsString(*q.CardholderName) {
			return schemas.RawPayment{}, badRequest("card_data_in_field", "cardholder_name", "must not contain a card number")
		}
	}
	if e := checkMetadata(det, q.Metadata); e != nil {
		return schemas.RawPayment{}, e
	}
	at := q.OccurredAt
	if at == 0 {
		at = now.UnixMilli()
	}
	return schemas.RawPayment{
		PaymentID: q.PaymentID, IdempotencyKey: idemKey, EventType: schemas.EventType(q.EventType),
		ParentPaymentID: q.ParentPaymentID, PAN: q.PAN, ExpiryMonth: *q.ExpiryMonth, ExpiryYear: *q.ExpiryYear,
		CVV: q.CVV, CardholderName: q.CardholderName, AmountMinor: *q.AmountMinor, Currency: q.Currency,
		MerchantID: q.MerchantID, OccurredAt: at, Metadata: q.Metadata,
	}, nil
}

func checkMetadata(det *pan.Detector, m map[string]string) *apiError {
	if len(m) > maxMetadata {
		return badRequest("schema_violation", "metadata", fmt.Sprintf("at most %d entries", maxMetadata))
	}
	for k, v := range m {
		if k == "" || len(k) > maxMetaKeyLen || len(v) > maxMetaValueLen {
			return badRequest("schema_violation", "metadata", fmt.Sprintf("keys 1 to %d characters, values at most %d", maxMetaKeyLen, maxMetaValueLen))
		}
		if det.ContainsString(k) || det.ContainsString(v) {
			return badRequest("card_data_in_field", "metadata", "must not contain a card number")
		}
	}
	return nil
}

// fingerprint identifies a request for Idempotency-Key comparison without
// holding card data: the PAN enters as its token (a keyed HMAC, never a
// plain hash, PCI DSS 3.5.1.1), the CVV not at all (sensitive authentication
// data is never stored in any form; only its presence counts), and the
// occurred_at the gateway filled in is left out. Every field is written
// length-prefixed (absent and empty differ), metadata in key order.
func fingerprint(tok string, q *paymentRequest) string {
	// The fields are appended to one buffer (on the stack for all but
	// large metadata) and hashed at once: no hash object, no closures.
	b := make([]byte, 0, 512)
	b = appendStr(b, "pcistream/gateway/request/v1")
	b = appendStr(b, tok)
	b = appendStr(b, q.PaymentID)
	b = appendStr(b, q.EventType)
	b = appendOpt(b, q.ParentPaymentID)
	b = binary.BigEndian.AppendUint64(b, uint64(int64(*q.ExpiryMonth)))
	b = binary.BigEndian.AppendUint64(b, uint64(int64(*q.ExpiryYear)))
	b = append(b, boolByte(q.CVV != nil && *q.CVV != ""))
	b = appendOpt(b, q.CardholderName)
	b = binary.BigEndian.AppendUint64(b, uint64(*q.AmountMinor))
	b = appendStr(b, q.Currency)
	b = appendStr(b, q.MerchantID)
	b = binary.BigEndian.AppendUint64(b, uint64(q.OccurredAt))
	var kb [8]string
	keys := kb[:0]
	for k := range q.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.BigEndian.AppendUint64(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendStr(b, k)
		b = appendStr(b, q.Metadata[k])
	}
	sum := sha256.Sum256(b)
	clear(b)
	return hex.EncodeToString(sum[:])
}

// appendStr appends s length-prefixed (8 bytes, big endian).
func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// appendOpt appends 0 for nil, else 1 and the string.
func appendOpt(b []byte, s *string) []byte {
	if s == nil {
		return append(b, 0)
	}
	return appendStr(append(b, 1), *s)
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
