package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/schemas"
)

// digitRun reports whether s occurs in b as a whole run of digits (a CVV
// inside a longer number, such as a timestamp, is not a CVV), and not
// inside a run of 16 or more hex characters: digests and ids in hex (the
// request fingerprint, audit event ids, trace ids) hold any 4-digit run
// between letters by chance, about once in ten thousand of them.
func digitRun(b []byte, s string) bool {
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	isHex := func(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(s))
		if j < 0 {
			return false
		}
		j += i
		end := j + len(s)
		if (j == 0 || !isDigit(b[j-1])) && (end == len(b) || !isDigit(b[end])) {
			lo, hi := j, end
			for lo > 0 && isHex(b[lo-1]) {
				lo--
			}
			for hi < len(b) && isHex(b[hi]) {
				hi++
			}
			if hi-lo < 16 {
				return true
			}
		}
		i = j + 1
	}
}

// hasPAN reports whether b holds a PAN: the shared detector, or a test card
// number as plain digits.
func hasPAN(det *pan.Detector, b []byte) bool {
	if det.Contains(b) {
		return true
	}
	for _, c := range testCards {
		if bytes.Contains(b, []byte(c)) {
			return true
		}
	}
	return false
}

// assertNoLeaks scans everything the gateway (and, when given, other
// processors) wrote: every topic of the test, the log output, every HTTP
// answer but detokenize's, the metrics exposition and the trace spans. No
// CVV anywhere; a PAN only in payments.raw.
func (e *env) assertNoLeaks(extraTopics []string) {
	e.t.Helper()
	det := pan.New()
	tp := e.topics
	topics := append([]string{tp.PaymentsRaw, tp.PaymentsTokenized, tp.PaymentsDLQ, tp.AuditEvents, tp.Vault, tp.Idempotency, tp.GatewayIdempotency}, extraTopics...)
	for _, topic := range topics {
		for _, r := range e.read(topic) {
			scan := r.Value
			if topic == tp.Vault {
				// Ciphertext is random bytes; scan the rest of the entry.
				var ve schemas.VaultEntry
				if err := e.serde.Decode(context.Background(), r.Value, &ve); err != nil {
					e.t.Fatalf("vault record does not decode: %v", err)
				}
				ve.WrappedKey, ve.Nonce, ve.Ciphertext = nil, nil, nil
				scan, _ = json.Marshal(ve)
			}
			if digitRun(scan, testCVV) || digitRun(r.Key, testCVV) {
				e.t.Fatalf("%s[%d]@%d holds the CVV", topic, r.Partition, r.Offset)
			}
			if topic != tp.PaymentsRaw && (hasPAN(det, scan) || hasPAN(det, r.Key)) {
				e.t.Fatalf("%s[%d]@%d holds a PAN", topic, r.Partition, r.Offset)
			}
		}
	}
	logs := e.logs.Bytes()
	// The gateway's logger masks PANs; a masked one in the log would still
	// mean the gateway logged card data, so look for masks too.
	if hasPAN(det, logs) || digitRun(logs, testCVV) || bytes.Contains(logs, []byte("Cardholder")) || bytes.Contains(logs, []byte("******")) {
		e.t.Fatalf("the gateway's log holds card data: %s", redact(logs))
	}
	e.mu.Lock()
	answers := e.answers
	e.mu.Unlock()
	for _, a := range answers {
		if hasPAN(det, a) || digitRun(a, testCVV) {
			e.t.Fatalf("an HTTP answer holds card data: %s", redact(a))
		}
	}
	rec := httptest.NewRecorder()
	e.reg.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	metrics, _ := io.ReadAll(rec.Body)
	if !bytes.Contains(metrics, []byte("payment_context_isolation_duration_seconds")) {
		e.t.Fatalf("the isolation histogram is not exported")
	}
	if hasPAN(det, metrics) || digitRun(metrics, testCVV) {
		e.t.Fatalf("the metrics hold card data")
	}
	var spans strings.Builder
	for _, s := range e.spans.GetSpans() {
		spans.WriteString(s.Name + " " + s.Status.Description)
		for _, a := range s.Attributes {
			spans.WriteString(" " + string(a.Key) + "=" + a.Value.Emit())
		}
		spans.WriteString("\n")
	}
	if hasPAN(det, []byte(spans.String())) || digitRun([]byte(spans.String()), testCVV) {
		e.t.Fatalf("a trace span holds card data")
	}
}

// The leak scan's CVV check finds the CVV as JSON and Avro write it, and
// not inside longer numbers or hex digests.
func TestDigitRun(t *testing.T) {
	digest := "3f0c" + testCVV + "ab" + strings.Repeat("e", 54)
	for i, tc := range []struct {
		in   string
		want bool
	}{
		{`{"cvv":"` + testCVV + `"}`, true},
		{"\x08" + testCVV + "\x02", true},
		{"cvv=" + testCVV, true},
		{"ab" + testCVV + "cd", true}, // too short for a digest
		{`"fp":"` + digest + `"`, false},
		{"179" + testCVV + "000", false},
	} {
		// The inputs hold the test CVV: report the case, not the input.
		if got := digitRun([]byte(tc.in), testCVV); got != tc.want {
			t.Errorf("case %d: digitRun = %v, want %v", i, got, tc.want)
		}
	}
}
