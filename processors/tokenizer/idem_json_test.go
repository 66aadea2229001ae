package tokenizer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// The hand-written changelog encoding must be byte-identical to
// encoding/json's, which restores and older workers read.
func TestIdemEntryJSONMatchesEncodingJSON(t *testing.T) {
	for _, e := range []idemEntry{
		{},
		{Context: "ctx_0123456789abcdef", TS: 1764400000000, Offset: 42, Part: 2},
		{Context: "a\"b\\c<d>&e\x01\u00e9", TS: -5, Offset: -1, Part: -3},
		{Context: "plain", TS: 1<<63 - 1, Offset: 1<<63 - 1, Part: 1<<31 - 1},
	} {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.appendJSON(nil); string(got) != string(want) {
			t.Errorf("appendJSON = %s, want %s", got, want)
		}
		var back idemEntry
		if err := json.Unmarshal(e.appendJSON(nil), &back); err != nil || back != e {
			t.Errorf("round trip of %+v: %+v, %v", e, back, err)
		}
	}
}

func TestParseDecimal(t *testing.T) {
	for _, c := range []struct {
		in    string
		limit int64
		want  int64
		ok    bool
	}{
		{"0", 10, 0, true}, {"2147483647", 1<<31 - 1, 1<<31 - 1, true}, {"2147483648", 1<<31 - 1, 0, false},
		{"9223372036854775807", 1<<63 - 1, 1<<63 - 1, true}, {"9223372036854775808", 1<<63 - 1, 0, false},
		{"", 10, 0, false}, {"-1", 10, 0, false}, {"1a", 10, 0, false}, {"12345678901234567890", 1<<63 - 1, 0, false},
	} {
		got, err := parseDecimal([]byte(c.in), c.limit)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("parseDecimal(%q, %d) = %d, %v; want %d, ok=%v", c.in, c.limit, got, err, c.want, c.ok)
		}
	}
}

// AuditID is the foundation contract's formula; the allocation-free
// version must give the same ids.
func TestAuditIDFormula(t *testing.T) {
	for _, c := range []struct {
		actor, action, topic string
		part                 int32
		off                  int64
	}{
		{Name, "tokenize", "payments.raw", 0, 0},
		{Name, "dlq", "payments.raw.b1", 2147483647, 9223372036854775807},
		{"x", "", strings.Repeat("t", 300), -1, -2},
	} {
		h := sha256.Sum256([]byte(c.actor + "|" + c.action + "|" + c.topic + "|" + strconv.FormatInt(int64(c.part), 10) + "|" + strconv.FormatInt(c.off, 10)))
		want := hex.EncodeToString(h[:])[:32]
		if got := AuditID(c.actor, c.action, c.topic, c.part, c.off); got != want {
			t.Errorf("AuditID = %s, want %s", got, want)
		}
	}
}
