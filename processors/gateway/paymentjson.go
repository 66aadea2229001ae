package gateway

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// decodePayment decodes a POST /v1/payments body into q without reflection:
// the payment route's hot path. It accepts and rejects what the
// encoding/json path (decodeStrict: Decoder with DisallowUnknownFields, one
// value, nothing after it) accepts and rejects, with the same answers, and
// decodes the same values (payment_json_test.go fuzzes the two against each
// other). That means encoding/json's rules: keys match field names exactly
// or case-insensitively (its folding), null leaves a plain field alone and
// clears a pointer or map, the first syntax error (1-based byte offset)
// wins over type and unknown-field errors, and of those the first in the
// document wins.
//
// One rule is stricter than encoding/json's: a key given twice (a field
// under any spelling, or a metadata key) is rejected, where encoding/json
// keeps the last. Two values for one field are how parser differentials
// start (a filter reads the first PAN, the gateway the second).
//
// Errors never quote the input beyond a starred field name (safeField).
func decodePayment(body []byte, q *paymentRequest) *apiError {
	d := payDecoder{b: body}
	d.skipSpace()
	if d.i == len(d.b) {
		return errTruncated()
	}
	switch d.b[d.i] {
	case '{':
		d.i++
		d.depth = 1
		d.object(q)
	case 'n':
		d.literal("null")
	default:
		if d.skipValue() {
			d.save(badRequest("schema_violation", "", "wrong type: want gateway.paymentRequest"))
		}
	}
	switch {
	case d.syn != nil:
		return d.syn
	case d.err != nil:
		return d.err
	}
	d.skipSpace()
	if d.i != len(d.b) {
		return badRequest("malformed_json", "", "the body must be one JSON object")
	}
	return nil
}

// payDecoder is one decoding: the input, the position, the nesting depth
// and the first errors.
type payDecoder struct {
	b     []byte
	i     int
	depth int
	// syn is the syntax error (or truncation) that stops decoding; err the
	// first type, unknown-field or duplicate error, kept while the rest is
	// still checked for syntax (encoding/json checks the whole value's
	// syntax before it decodes).
	syn, err *apiError
}

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

func errTruncated() *apiError {
	return badRequest("malformed_json", "", "the body is empty or truncated")
}

// fail records a syntax error at the current byte (1-based, as
// json.SyntaxError.Offset) or a truncation at the end of the input; it
// returns false so callers can return it.
func (d *payDecoder) fail() bool {
	if d.syn == nil {
		if d.i >= len(d.b) {
			d.syn = errTruncated()
		} else {
			d.syn = badRequest("malformed_json", "", fmt.Sprintf("invalid JSON at byte %d", d.i+1))
		}
	}
	return false
}

func (d *payDecoder) save(e *apiError) {
	if d.err == nil {
		d.err = e
	}
}

func (d *payDecoder) typeError(field, want string) {
	d.save(badRequest("schema_violation", safeField(field), "wrong type: want "+want))
}

func (d *payDecoder) skipSpace() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// expect consumes c after optional space, or fails.
func (d *payDecoder) expect(c byte) bool {
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return d.fail()
}

// Payment fields, in paymentRequest order; their bit in payDecoder.object's
// seen set.
const (
	fPaymentID = iota
	fEventType
	fParentPaymentID
	fPAN
	fExpiryMonth
	fExpiryYear
	fCVV
	fCardholderName
	fAmountMinor
	fCurrency
	fMerchantID
	fOccurredAt
	fMetadata
	fUnknown
)

// payFields are the JSON names, indexed by the constants above.
var payFields = [...]string{"payment_id", "event_type", "parent_payment_id", "pan", "expiry_month", "expiry_year",
	"cvv", "cardholder_name", "amount_minor", "currency", "merchant_id", "occurred_at", "metadata"}

// fieldOf maps a key to its field: the exact name, else encoding/json's
// case-insensitive match.
func fieldOf(key []byte) int {
	switch string(key) {
	case "payment_id":
		return fPaymentID
	case "event_type":
		return fEventType
	case "parent_payment_id":
		return fParentPaymentID
	case "pan":
		return fPAN
	case "expiry_month":
		return fExpiryMonth
	case "expiry_year":
		return fExpiryYear
	case "cvv":
		return fCVV
	case "cardholder_name":
		return fCardholderName
	case "amount_minor":
		return fAmountMinor
	case "currency":
		return fCurrency
	case "merchant_id":
		return fMerchantID
	case "occurred_at":
		return fOccurredAt
	case "metadata":
		return fMetadata
	}
	var kb, nb [32]byte
	folded := foldName(kb[:0], key)
	for f, name := range payFields {
		if string(folded) == string(foldName(nb[:0], []byte(name))) {
			return f
		}
	}
	return fUnknown
}

// foldName is encoding/json's key folding: ASCII upper case, and every
// other rune replaced by the smallest rune of its simple case-folding orbit
// (so "ſ" matches "s", and "K" (Kelvin) matches "k").
func foldName(out, in []byte) []byte {
	for i := 0; i < len(in); {
		if c := in[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(in[i:])
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		out = utf8.AppendRune(out, r)
		i += n
	}
	return out
}

// object decodes the payment object; the '{' is consumed.
func (d *payDecoder) object(q *paymentRequest) {
	var seen uint32
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return
	}
	for {
		d.skipSpace()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			d.fail()
			return
		}
		raw, esc, ok := d.str()
		if !ok {
			return
		}
		var key []byte
		if esc {
			key = []byte(unquote(raw))
		} else {
			key = raw[1 : len(raw)-1]
		}
		f := fieldOf(key)
		switch {
		case f == fUnknown:
			d.save(jsonError(fmt.Errorf("json: unknown field %q", key)))
		case seen&(1<<f) != 0:
			d.save(badRequest("schema_violation", payFields[f], "duplicate key"))
		}
		if f != fUnknown {
			seen |= 1 << f
		}
		if !d.expect(':') {
			return
		}
		d.skipSpace()
		if !d.field(q, f) {
			return
		}
		d.skipSpace()
		if d.i >= len(d.b) {
			d.fail()
			return
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return
		default:
			d.fail()
			return
		}
	}
}

// field decodes the value of field f (space skipped); false on a syntax
// error.
func (d *payDecoder) field(q *paymentRequest, f int) bool {
	switch f {
	case fPaymentID:
		return d.plainString(&q.PaymentID, f)
	case fEventType:
		return d.plainString(&q.EventType, f)
	case fPAN:
		return d.plainString(&q.PAN, f)
	case fCurrency:
		return d.plainString(&q.Currency, f)
	case fMerchantID:
		return d.plainString(&q.MerchantID, f)
	case fParentPaymentID:
		return d.optString(&q.ParentPaymentID, f)
	case fCVV:
		return d.optString(&q.CVV, f)
	case fCardholderName:
		return d.optString(&q.CardholderName, f)
	case fExpiryMonth:
		return d.optInt32(&q.ExpiryMonth, f)
	case fExpiryYear:
		return d.optInt32(&q.ExpiryYear, f)
	case fAmountMinor:
		n, set, ok := d.int(f, "int64", 64)
		if set {
			q.AmountMinor = &n
		} else if ok && n == nullInt {
			q.AmountMinor = nil
		}
		return ok
	case fOccurredAt:
		n, set, ok := d.int(f, "int64", 64)
		if set {
			q.OccurredAt = n
		}
		return ok
	case fMetadata:
		return d.metadata(q)
	}
	return d.skipValue()
}

// nullInt is what int reports for a null (with set false).
const nullInt = -1 << 63

// stringOrNull decodes the value of field f: got is '"' for a string (in
// s), 'n' for null, 0 for any other type (a type error; the value is
// skipped). ok is false on a syntax error.
func (d *payDecoder) stringOrNull(f int) (s string, got byte, ok bool) {
	if d.i >= len(d.b) {
		return "", 0, d.fail()
	}
	switch d.b[d.i] {
	case '"':
		s, ok = d.stringValue()
		return s, '"', ok
	case 'n':
		return "", 'n', d.literal("null")
	}
	d.typeError(payFields[f], "string")
	return "", 0, d.skipValue()
}

// plainString decodes into a string field: null leaves it as it is.
func (d *payDecoder) plainString(dst *string, f int) bool {
	str, got, ok := d.stringOrNull(f)
	if ok && got == '"' {
		*dst = str
	}
	return ok
}

// optString decodes into a *string field: null sets it nil.
func (d *payDecoder) optString(dst **string, f int) bool {
	str, got, ok := d.stringOrNull(f)
	switch {
	case ok && got == '"':
		*dst = &str
	case ok && got == 'n':
		*dst = nil
	}
	return ok
}

func (d *payDecoder) optInt32(dst **int32, f int) bool {
	n, set, ok := d.int(f, "int32", 32)
	if set {
		v := int32(n)
		*dst = &v
	} else if ok && n == nullInt {
		*dst = nil
	}
	return ok
}

// int decodes an integer of bits bits. set reports a value; a null gives
// n == nullInt and set false. Anything else (a fraction, an exponent, out
// of range, another type) is a type error, as in encoding/json.
func (d *payDecoder) int(f int, want string, bits int) (n int64, set, ok bool) {
	if d.i >= len(d.b) {
		return 0, false, d.fail()
	}
	c := d.b[d.i]
	if c == 'n' {
		return nullInt, false, d.literal("null")
	}
	if c != '-' && (c < '0' || c > '9') {
		d.typeError(payFields[f], want)
		return 0, false, d.skipValue()
	}
	start := d.i
	if !d.number() {
		return 0, false, false
	}
	v, ok := parseInt(d.b[start:d.i], bits)
	if !ok {
		d.typeError(payFields[f], want)
		return 0, false, true
	}
	return v, true, true
}

// parseInt is strconv.ParseInt(s, 10, bits) on a JSON number, without
// converting it to a string for the common short case.
func parseInt(s []byte, bits int) (int64, bool) {
	neg := len(s) > 0 && s[0] == '-'
	digits := s
	if neg {
		digits = s[1:]
	}
	if len(digits) == 0 || len(digits) > 18 {
		v, err := strconv.ParseInt(string(s), 10, bits)
		return v, err == nil
	}
	var v int64
	for _, c := range digits {
		if !isDigit(c) {
			return 0, false // a fraction or an exponent
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	if bits < 64 && (v < -1<<(bits-1) || v >= 1<<(bits-1)) {
		return 0, false
	}
	return v, true
}

// metadata decodes the metadata object (a map of strings).
func (d *payDecoder) metadata(q *paymentRequest) bool {
	if d.i >= len(d.b) {
		return d.fail()
	}
	switch d.b[d.i] {
	case 'n':
		q.Metadata = nil
		return d.literal("null")
	case '{':
	default:
		d.typeError("metadata", "map[string]string")
		return d.skipValue()
	}
	if !d.push() {
		return false
	}
	d.i++
	if q.Metadata == nil {
		q.Metadata = make(map[string]string, 4)
	}
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		d.depth--
		return true
	}
	for {
		d.skipSpace()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return d.fail()
		}
		k, ok := d.stringValue()
		if !ok || !d.expect(':') {
			return false
		}
		d.skipSpace()
		if _, dup := q.Metadata[k]; dup {
			d.save(badRequest("schema_violation", "metadata", "duplicate key"))
		}
		v := ""
		if d.i < len(d.b) && d.b[d.i] == '"' {
			if v, ok = d.stringValue(); !ok {
				return false
			}
		} else if d.i < len(d.b) && d.b[d.i] == 'n' {
			if !d.literal("null") {
				return false
			}
		} else {
			d.typeError("metadata", "string")
			if !d.skipValue() {
				return false
			}
		}
		q.Metadata[k] = v
		d.skipSpace()
		if d.i >= len(d.b) {
			return d.fail()
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			d.depth--
			return true
		default:
			return d.fail()
		}
	}
}

// stringValue decodes the string at d.i into a new Go string (the body is
// cleared after decoding, so nothing may point into it).
func (d *payDecoder) stringValue() (string, bool) {
	raw, esc, ok := d.str()
	if !ok {
		return "", false
	}
	if esc {
		return unquote(raw), true
	}
	return string(raw[1 : len(raw)-1]), true
}

// str scans the string literal at d.i (the opening quote) and returns it
// quoted. esc reports that it needs encoding/json's unquoting (escapes or
// bytes that are not valid UTF-8); otherwise its contents are the value.
func (d *payDecoder) str() (raw []byte, esc, ok bool) {
	start := d.i
	d.i++
	ascii := true
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			raw = d.b[start:d.i]
			if !esc && !ascii && !utf8.Valid(raw) {
				esc = true
			}
			return raw, esc, true
		case c == '\\':
			esc = true
			d.i++
			if d.i >= len(d.b) {
				return nil, false, d.fail()
			}
			switch d.b[d.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i++
			case 'u':
				d.i++
				for range 4 {
					if d.i >= len(d.b) || !isHex(d.b[d.i]) {
						return nil, false, d.fail()
					}
					d.i++
				}
			default:
				return nil, false, d.fail()
			}
		case c < 0x20:
			return nil, false, d.fail()
		default:
			if c >= utf8.RuneSelf {
				ascii = false
			}
			d.i++
		}
	}
	return nil, false, d.fail()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// unquote decodes a string literal with escapes or invalid UTF-8 exactly as
// encoding/json does (invalid UTF-8 and lone surrogates become U+FFFD): the
// rare case, left to the library.
func unquote(raw []byte) string {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "" // unreachable: str checked the syntax
	}
	return s
}

// literal consumes the literal word (null, true, false) at d.i.
func (d *payDecoder) literal(word string) bool {
	for j := 0; j < len(word); j++ {
		if d.i >= len(d.b) || d.b[d.i] != word[j] {
			return d.fail()
		}
		d.i++
	}
	return true
}

// number consumes a JSON number at d.i.
func (d *payDecoder) number() bool {
	if d.b[d.i] == '-' {
		d.i++
	}
	if d.i >= len(d.b) {
		return d.fail()
	}
	switch c := d.b[d.i]; {
	case c == '0':
		d.i++
	case c >= '1' && c <= '9':
		d.digits()
	default:
		return d.fail()
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if d.i >= len(d.b) || !isDigit(d.b[d.i]) {
			return d.fail()
		}
		d.digits()
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if d.i >= len(d.b) || !isDigit(d.b[d.i]) {
			return d.fail()
		}
		d.digits()
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (d *payDecoder) digits() {
	for d.i < len(d.b) && isDigit(d.b[d.i]) {
		d.i++
	}
}

// push enters an object or array, failing past encoding/json's depth limit.
func (d *payDecoder) push() bool {
	d.depth++
	if d.depth > maxDepth {
		return d.fail()
	}
	return true
}

// skipValue checks the syntax of the value at d.i and steps over it.
func (d *payDecoder) skipValue() bool {
	if d.i >= len(d.b) {
		return d.fail()
	}
	switch c := d.b[d.i]; {
	case c == '"':
		_, _, ok := d.str()
		return ok
	case c == '{' || c == '[':
		return d.skipComposite(c)
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || isDigit(c):
		return d.number()
	}
	return d.fail()
}

// skipComposite steps over an object or array, checking its syntax.
func (d *payDecoder) skipComposite(open byte) bool {
	if !d.push() {
		return false
	}
	d.i++
	closer := byte(']')
	if open == '{' {
		closer = '}'
	}
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == closer {
		d.i++
		d.depth--
		return true
	}
	for {
		d.skipSpace()
		if open == '{' {
			if d.i >= len(d.b) || d.b[d.i] != '"' {
				return d.fail()
			}
			if _, _, ok := d.str(); !ok || !d.expect(':') {
				return false
			}
			d.skipSpace()
		}
		if !d.skipValue() {
			return false
		}
		d.skipSpace()
		if d.i >= len(d.b) {
			return d.fail()
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case closer:
			d.i++
			d.depth--
			return true
		default:
			return d.fail()
		}
	}
}
