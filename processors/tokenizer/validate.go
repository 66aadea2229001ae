package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/schemas"
)

// Reason codes on DLQ records and audit events. They are stable: alerting and
// runbooks match on them.
const (
	ReasonMalformedAvro     = "malformed_avro"
	ReasonUnknownSchemaID   = "unknown_schema_id"
	ReasonMalformedJSON     = "malformed_json"
	ReasonUnknownEncoding   = "unknown_encoding"
	ReasonInvalidPAN        = "invalid_pan"
	ReasonLuhnFailed        = "luhn_failed"
	ReasonUnknownNetwork    = "unknown_network"
	ReasonInvalidExpiry     = "invalid_expiry"
	ReasonExpiredCard       = "expired_card"
	ReasonInvalidAmount     = "invalid_amount"
	ReasonInvalidCurrency   = "invalid_currency"
	ReasonMissingParent     = "missing_parent"
	ReasonMissingPaymentID  = "missing_payment_id"
	ReasonInvalidEventType  = "invalid_event_type"
	ReasonInvalidCVV        = "invalid_cvv"
	ReasonOversize          = "oversize"
	ReasonInvalidMerchantID = "invalid_merchant_id"
	ReasonMissingField      = "missing_field"
)

// rejection is a validation failure: a machine-readable code and a message
// that never contains cardholder data.
type rejection struct {
	code string
	msg  string
}

// cleanPAN returns the PAN's digits with spaces and dashes removed, or nil if
// anything else is in it. It copies into buf to keep the PAN in one place
// that the caller clears.
func cleanPAN(buf []byte, s string) []byte {
	buf = buf[:0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			buf = append(buf, c)
		case c == ' ' || c == '-':
		default:
			return nil
		}
	}
	return buf
}

// checkPAN validates digits: length, Luhn, and a known card network.
func checkPAN(digits []byte) (pan.Network, *rejection) {
	if len(digits) < 12 || len(digits) > 19 {
		return pan.Unknown, &rejection{ReasonInvalidPAN, "PAN must be 12 to 19 digits (spaces and dashes allowed)"}
	}
	if !pan.Luhn(digits) {
		return pan.Unknown, &rejection{ReasonLuhnFailed, "PAN fails the Luhn check"}
	}
	n, ok := pan.Identify(digits)
	if !ok || n == pan.Unknown {
		return pan.Unknown, &rejection{ReasonUnknownNetwork, "PAN is not in a known card network's IIN range"}
	}
	return n, nil
}

// checkExpiry validates the expiry month/year against at, the event's own
// time (so a replay decides the same way). A card is valid through the last
// day of its expiry month. Two-digit years are read as 20YY.
func checkExpiry(month, year int32, at time.Time) *rejection {
	if month < 1 || month > 12 {
		return &rejection{ReasonInvalidExpiry, "expiry month must be 1 to 12"}
	}
	if year >= 0 && year < 100 {
		year += 2000
	}
	if year < 2000 || year > 2200 {
		return &rejection{ReasonInvalidExpiry, "expiry year out of range"}
	}
	// First instant after the expiry month, UTC.
	end := time.Date(int(year), time.Month(month)+1, 1, 0, 0, 0, 0, time.UTC)
	if !at.Before(end) {
		return &rejection{ReasonExpiredCard, "card expired before the event time"}
	}
	return nil
}

// checkCVV accepts an absent CVV or 3 to 4 digits. The value itself is never
// copied anywhere.
func checkCVV(cvv *string) *rejection {
	if cvv == nil || *cvv == "" {
		return nil
	}
	s := *cvv
	if len(s) < 3 || len(s) > 4 {
		return &rejection{ReasonInvalidCVV, "CVV must be 3 or 4 digits"}
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return &rejection{ReasonInvalidCVV, "CVV must be 3 or 4 digits"}
		}
	}
	return nil
}

// isoCurrencies holds the active ISO 4217 alphabetic codes (plus the
// precious-metal and testing codes, which payment systems do carry).
var isoCurrencies = func() map[string]bool {
	const codes = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD " +
		"BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN " +
		"ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD " +
		"JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR " +
		"MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF " +
		"SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS " +
		"UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD " +
		"XPF XPT XSU XTS XUA YER ZAR ZMW ZWG ZWL"
	m := map[string]bool{}
	for _, c := range strings.Fields(codes) {
		m[c] = true
	}
	return m
}()

func checkAmount(amountMinor int64, currency string) *rejection {
	if amountMinor <= 0 {
		return &rejection{ReasonInvalidAmount, "amount_minor must be greater than zero"}
	}
	if !isoCurrencies[currency] {
		return &rejection{ReasonInvalidCurrency, "currency is not an ISO 4217 alphabetic code (upper case, e.g. EUR)"}
	}
	return nil
}

// requiredFields returns the raw payment fields that have no default in
// raw_payment.avsc: an Avro payment always carries them, so a JSON payment
// must too. Read from the schema, so the two cannot drift apart.
func requiredFields() ([]string, error) {
	defs, err := schemas.Defs()
	if err != nil {
		return nil, err
	}
	for _, d := range defs {
		if d.File != "raw_payment.avsc" {
			continue
		}
		rs, ok := d.Schema.(*avro.RecordSchema)
		if !ok {
			return nil, errors.New("raw_payment.avsc is not a record schema")
		}
		var out []string
		for _, f := range rs.Fields() {
			// event_type defaults to AUTHORIZATION in JSON
			// (schemas.DecodeRawPaymentJSON), as the enum's default symbol.
			if !f.HasDefault() && f.Name() != "event_type" {
				out = append(out, f.Name())
			}
		}
		return out, nil
	}
	return nil, errors.New("raw_payment.avsc is not among the embedded schemas")
}

// missingJSONFields returns the required fields that the JSON object b lacks,
// holds as null, or holds as a blank string, in schema order. Names match
// exactly, as in raw_payment.avsc (Go's case-insensitive matching would
// accept "PAN" for "pan"; a strict contract does not).
func missingJSONFields(b []byte, required []string) []string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil // not an object: the decoder has already said so
	}
	var out []string
	for _, f := range required {
		v, ok := m[f]
		v = bytes.TrimSpace(v)
		switch {
		case !ok, len(v) == 0, string(v) == "null":
			out = append(out, f)
		case v[0] == '"':
			var s string
			if json.Unmarshal(v, &s) == nil && strings.TrimSpace(s) == "" {
				out = append(out, f)
			}
		}
	}
	return out
}
