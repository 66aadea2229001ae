// Package redact makes the copies pcistream keeps of records it rejects
// (dead letters) safe to hold outside PCI DSS scope, whatever the input.
//
// It does not rely on PAN detection alone. Detection (internal/pan) masks the
// PANs it recognises and keeps what the policy allows; then three structural
// rules fail closed:
//
//   - fields named like card data are handled by name: CVV-like fields (cvv,
//     cvc, cvv2, cid, csc, security_code, card_verification..., any casing and
//     separators) are dropped, PAN-like fields have every digit starred, and
//     cardholder-name fields are withheld; also inside JSON nested in values;
//   - a CVV-like label followed by 3 or 4 digits in free text ("cvv2=737",
//     `"cvc":"123"`, "<cvv>123</cvv>") has those digits starred;
//   - any cluster of 12 or more digits still visible (digits of any script,
//     at most 4 other characters apart) has all its digits starred: a PAN
//     has 12 to 19 digits, and every common way of writing one (separators,
//     glued letters, percent, JSON and HTML escapes, fullwidth digits) keeps
//     at least one digit per PAN digit close together.
//
// The last rule over-masks (a timestamp string loses its digits); a dead
// letter is for diagnosis, and the source record stays in its topic for the
// few who may read it.
package redact

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/pcistream/pcistream/internal/pan"
)

// Withheld replaces the value of a cardholder-name field, and of a PAN-like
// field that is not a string.
const Withheld = "[withheld]"

// minCluster is the fewest digits that can spell a PAN.
const minCluster = 12

// maxGap is the most non-digit characters between two digits of one cluster:
// enough for "&#x" + ";" (HTML hex entities), "\u" escapes, " - ".
const maxGap = 4

// Class says how a field name is treated.
type Class uint8

// Field classes.
const (
	Plain  Class = iota // an ordinary field: its value is redacted as text
	CVV                 // card verification code: dropped
	PAN                 // card number: every digit starred
	Holder              // cardholder name: withheld
)

// cvvNames and panNames are normalised names (lower case, letters and digits
// only).
var (
	cvvNames = map[string]bool{
		"cvv": true, "cvv2": true, "cvc": true, "cvc2": true, "cid": true, "csc": true, "cvn": true,
		"cvn2": true, "cav2": true, "cvd": true, "cve": true, "cvs": true, "cvvcvc": true, "cvv2cvc2": true,
		"securitycode": true, "cardsecuritycode": true, "cardcode": true, "verificationcode": true,
		"cardcvv": true, "cardcvc": true, "cardcvv2": true, "cardcvc2": true,
	}
	panNames = map[string]bool{
		"pan": true, "pans": true, "cardpan": true, "rawpan": true, "fullpan": true, "primaryaccountnumber": true,
		"accountnumber": true, "acctnum": true, "cardnumber": true, "cardno": true, "cardnum": true, "card": true,
		"ccnumber": true, "ccnum": true, "ccno": true, "cc": true, "ccn": true, "creditcard": true,
		"creditcardnumber": true, "debitcard": true, "debitcardnumber": true, "track": true, "track1": true,
		"track2": true, "trackdata": true, "magstripe": true, "pinblock": true, "number": true,
	}
)

// normalise appends name to dst lower-cased, letters and digits only.
func normalise(dst []byte, name string) []byte {
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			dst = append(dst, byte(r))
		case r >= 'A' && r <= 'Z':
			dst = append(dst, byte(r+'a'-'A'))
		case r > unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
		}
	}
	return dst
}

// Classify returns how a field (or header, or log attribute) named name is
// treated. It does not allocate for names up to 64 bytes.
func Classify(name string) Class {
	var buf [64]byte
	n := normalise(buf[:0], name)
	has := func(s string) bool { return bytes.Contains(n, []byte(s)) }
	switch {
	case len(n) == 0:
		return Plain
	case cvvNames[string(n)], has("cvv"), has("cvc"), has("securitycode"), has("cardverification"):
		return CVV
	case panNames[string(n)], has("cardnumber"), has("cardnum"), has("creditcard"), has("track2"), has("pinblock"),
		bytes.HasSuffix(n, []byte("pan")) && !bytes.HasSuffix(n, []byte("japan")) && !bytes.HasSuffix(n, []byte("span")):
		return PAN
	case has("cardholder"), has("holdername"), has("nameoncard"):
		return Holder
	}
	return Plain
}

// cvvText finds a CVV-like label followed, within a few separator characters
// (or percent-escapes), by 3 or 4 digits not followed by another digit.
var cvvText = regexp.MustCompile(`(?i)(?:^|[^\pL])(?:cvv2?|cvc2?|cvn2?|cav2|cid|csc|cvd|security[\s_-]?code|card[\s_-]?verification[\pL_-]*|card[\s_-]?code)(?:[^\pL\pN\n]|%[0-9a-f]{2}){0,12}?(\pN{3,4})(?:[^\pN]|$)`)

// holderText finds a cardholder-name label followed by a value: the value (up
// to a quote, tag, separator or line end) is withheld.
var holderText = regexp.MustCompile(`(?i)(?:card[\s_-]?holder(?:[\s_-]?name)?|name[\s_-]?on[\s_-]?card|holder[\s_-]?name)(?:\\?["']|[\s:=>])+([^"'<>&\\\n,;]{1,128})`)

// withholdNames replaces the values after cardholder-name labels.
func withholdNames(b []byte) []byte {
	ms := holderText.FindAllSubmatchIndex(b, -1)
	if len(ms) == 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	last := 0
	for _, m := range ms {
		out = append(out, b[last:m[2]]...)
		out = append(out, Withheld...)
		last = m[3]
	}
	return append(out, b[last:]...)
}

// Redactor redacts text, field maps and JSON for dead letters.
type Redactor struct {
	det    *pan.Detector
	policy pan.Policy
}

// New returns a Redactor masking detected PANs with det under policy.
func New(det *pan.Detector, policy pan.Policy) *Redactor {
	if det == nil {
		det = pan.New()
	}
	return &Redactor{det: det, policy: policy}
}

// Text returns b redacted as free text: detected PANs masked, CVV values
// after a CVV label starred, digit clusters that could spell a PAN starred.
// The result is a new slice.
func (r *Redactor) Text(b []byte) []byte {
	out, _ := r.det.Mask(nil, b, r.policy)
	for _, m := range cvvText.FindAllSubmatchIndex(out, -1) {
		starDigits(out[m[2]:m[3]])
	}
	return starClusters(withholdNames(out))
}

// String is Text for strings.
func (r *Redactor) String(s string) string { return string(r.Text([]byte(s))) }

// Value redacts a field value: JSON objects and arrays are walked (fields
// handled by name, strings as text), anything else is text.
func (r *Redactor) Value(b []byte) []byte {
	t := bytes.TrimSpace(b)
	if len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		if out, ok := r.jsonValue(t); ok {
			return out
		}
	}
	return r.Text(b)
}

// Bytes redacts bytes that should be text (a record key, a header value): text
// goes through Value; anything that is not printable UTF-8 is withheld whole,
// since numbers in binary encodings (varints, BCD) cannot be located.
func (r *Redactor) Bytes(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	if !IsText(b) {
		return binaryWithheld(len(b))
	}
	return r.Value(b)
}

// Opaque redacts bytes that could not be parsed: printable UTF-8 keeps its
// letters and punctuation with every digit starred (no structure to trust),
// anything else is withheld whole.
func (r *Redactor) Opaque(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	if !IsText(b) {
		return binaryWithheld(len(b))
	}
	out := make([]byte, 0, len(b))
	for _, c := range string(b) {
		if unicode.IsDigit(c) {
			out = append(out, '*')
			continue
		}
		out = utf8.AppendRune(out, c)
	}
	return withholdNames(out)
}

func binaryWithheld(n int) []byte {
	return []byte("[binary value withheld: " + strconv.Itoa(n) + " bytes]")
}

// IsText reports whether b is valid UTF-8 without control characters other
// than tab, newline and carriage return.
func IsText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range string(b) {
		if c != '\t' && c != '\n' && c != '\r' && unicode.IsControl(c) {
			return false
		}
	}
	return true
}

// Map redacts a string map (payment metadata): CVV-like keys are dropped,
// PAN-like ones have every digit of the value starred, holder names are
// withheld, keys are redacted as text and values through Value. The result
// is a new map; nil for an empty one.
func (r *Redactor) Map(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		c := Classify(k)
		if c == CVV {
			continue
		}
		out[r.String(k)] = string(r.Field(c, []byte(v)))
	}
	return out
}

// Field redacts the value of a field of class c (CVV fields should be dropped
// by the caller; here they yield nothing).
func (r *Redactor) Field(c Class, v []byte) []byte {
	switch c {
	case CVV:
		return nil
	case PAN:
		if !IsText(v) {
			return binaryWithheld(len(v))
		}
		return r.Opaque(v)
	case Holder:
		return []byte(Withheld)
	}
	return r.Bytes(v)
}

// jsonValue walks a JSON document; ok is false when b is not valid JSON.
func (r *Redactor) jsonValue(b []byte) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil, false
	}
	v = r.walk(v)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, false
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), true
}

func (r *Redactor) walk(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			switch Classify(k) {
			case CVV:
				continue
			case PAN:
				if s, ok := x.(string); ok {
					out[r.String(k)] = string(r.Opaque([]byte(s)))
				} else {
					out[r.String(k)] = Withheld
				}
			case Holder:
				out[r.String(k)] = Withheld
			default:
				out[r.String(k)] = r.walk(x)
			}
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = r.walk(x)
		}
		return out
	case string:
		return string(r.Value([]byte(t))) // JSON nested in a string is walked too
	case json.Number:
		if s := r.String(t.String()); s != t.String() {
			return s
		}
		return t
	}
	return v
}

// starDigits replaces every digit in b (ASCII or any script) with '*',
// keeping the length in bytes (a multi-byte digit becomes as many stars).
func starDigits(b []byte) {
	for i := 0; i < len(b); {
		c, n := utf8.DecodeRune(b[i:])
		if unicode.IsDigit(c) {
			for j := i; j < i+n; j++ {
				b[j] = '*'
			}
		}
		i += n
	}
}

// starClusters stars every digit of each cluster of at least minCluster
// digits whose neighbours are at most maxGap characters apart (a newline
// ends a cluster). It works in place and returns b.
func starClusters(b []byte) []byte {
	start, end, count, gap := -1, 0, 0, 0
	flush := func() {
		if count >= minCluster {
			starDigits(b[start:end])
		}
		start, count, gap = -1, 0, 0
	}
	for i := 0; i < len(b); {
		c, n := utf8.DecodeRune(b[i:])
		switch {
		case unicode.IsDigit(c):
			if start < 0 {
				start = i
			}
			count++
			gap = 0
			end = i + n
		case start >= 0:
			gap++
			if gap > maxGap || c == '\n' {
				flush()
			}
		}
		i += n
	}
	if start >= 0 {
		flush()
	}
	return b
}
