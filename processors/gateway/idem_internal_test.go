package gateway

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/pan"
)

// The hand-written changelog value decodes to the entry it was made from.
func TestIdemEntryAppendJSON(t *testing.T) {
	e := IdemEntry{Fingerprint: "ab01", KeyVersion: 3, TS: 1764440000123, Status: 202,
		Body: acceptedJSON("p-\"1\"<", "ctx_x", "visa", "1111")}
	var got IdemEntry
	if err := json.Unmarshal(e.appendJSON(nil), &got); err != nil {
		t.Fatalf("appendJSON is not JSON: %v", err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip: got %+v, want %+v", got, e)
	}
}

// TestEntryWithBodyInside checks the payment route's one-buffer rendering
// against appendJSON.
func TestEntryWithBodyInside(t *testing.T) {
	e := IdemEntry{Fingerprint: "ab12", KeyVersion: 3, TS: 99, Status: 202}
	b := e.appendHead(nil)
	start := len(b)
	b = appendAccepted(b, "p-\"1\"<", "ctx_x", "visa", "1111")
	body := b[start:len(b):len(b)]
	b = append(b, '}')
	e.Body = acceptedJSON("p-\"1\"<", "ctx_x", "visa", "1111")
	if string(b) != string(e.appendJSON(nil)) || string(body) != string(e.Body) {
		t.Errorf("got %s (body %s), want %s", b, body, e.appendJSON(nil))
	}
}

// TestSafeFieldEchoesNoCardDigits: a field name echoed in an error keeps
// the schema's names and stars every digit, in any script or encoding.
func TestSafeFieldEchoesNoCardDigits(t *testing.T) {
	det := pan.New()
	for i, name := range []string{
		"4111111111111111", "pan4111111111111111", "４１１１１１１１１１１１１１１１",
		"٤١١١١١١١١١١١١١١١", `\u0034111111111111111`, "%34%31%31%31111111111111", "&#52;111111111111111",
		"4111\u00a01111\u00a01111\u00a01111", "4111\u200b1111\u200b1111\u200b1111",
	} {
		if got := safeField(name); det.ContainsString(got) || strings.ContainsAny(got, "0123456789") {
			t.Errorf("case %d: safeField echoes card digits", i) // the value itself is not printed
		}
	}
	if got := safeField("metadata.order_id"); got != "metadata.order_id" {
		t.Errorf("safeField(%q) = %q, want it unchanged", "metadata.order_id", got)
	}
	if got := safeField(strings.Repeat("é", 100)); len(got) != 64 {
		t.Errorf("safeField of 100 runes: %d bytes, want 64", len(got))
	}
}
