package gateway

import (
	"encoding/json"
	"reflect"
	"testing"
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
