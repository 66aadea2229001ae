package tokenizer

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/token"
)

// Idempotency entries round-trip in the binary format, and entries written
// by older workers (encoding/json of idemEntry, with or without "part") are
// still read, so existing state topics keep working.
func TestIdemEntryJSONMatchesEncodingJSON(t *testing.T) {
	real := contextID("payment", "pay_1")
	for _, e := range []idemEntry{
		{},
		{Context: real, TS: 1764400000000, Offset: 42, Part: 2},
		{Context: "ctx_" + strings.Repeat("Q", 26), TS: -1, Offset: 0, Part: 0}, // every bit set
		{Context: "ctx_0123456789abcdef", TS: 1764400000000, Offset: 42, Part: 2},
		{Context: "a\"b\\c<d>&e\x01\u00e9", TS: -5, Offset: -1, Part: -3},
		{Context: "plain", TS: 1<<63 - 1, Offset: 1<<63 - 1, Part: 1<<31 - 1},
		{Context: real[:29] + "a", TS: -1 << 63, Offset: -1 << 63, Part: -1 << 31}, // 'a' is not in the alphabet
	} {
		bin := e.append(nil)
		if back, err := parseIdem(bin); err != nil || back != e {
			t.Errorf("binary round trip of %+v: %+v, %v", e, back, err)
		}
		if want := byte(idemRaw); packable(e.Context) {
			want = idemPacked
			if len(bin) > 1+ctxPackedLen+10+10+5 {
				t.Errorf("packed entry of %+v is %d bytes", e, len(bin))
			}
			if bin[0] != want {
				t.Errorf("entry of %+v starts with %#x, want %#x", e, bin[0], want)
			}
		} else if bin[0] != want {
			t.Errorf("entry of %+v starts with %#x, want %#x", e, bin[0], want)
		}
		legacy, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := parseIdem(legacy); err != nil || back != e {
			t.Errorf("legacy JSON %s: %+v, %v", legacy, back, err)
		}
	}
	// The oldest entries had no "part".
	if back, err := parseIdem([]byte(`{"ctx":"ctx_x","ts":7,"off":3}`)); err != nil || back != (idemEntry{Context: "ctx_x", TS: 7, Offset: 3}) {
		t.Errorf("entry without part: %+v, %v", back, err)
	}
}

// The packed format's bytes are pinned: workers of different versions
// share a state topic, so a change here must be a new first byte.
func TestIdemEntryPackedBytes(t *testing.T) {
	e := idemEntry{Context: "ctx_" + token.Alphabet[:26], TS: 1790000000000, Offset: 300, Part: 1}
	got := hex.EncodeToString(e.append(nil))
	// 0x01; indexes 0..25 in 5 bits each; zigzag varints of 1790000000000, 300, 1.
	// (Computed independently: Python's int.to_bytes of the 130 bits << 6.)
	const want = "01" + "00443214c74254b635cf84653a56d7c640" + "80b083c59868" + "d804" + "02"
	if got != want {
		t.Errorf("packed entry = %s, want %s", got, want)
	}
	if len(e.append(nil)) != 27 {
		t.Errorf("packed entry is %d bytes, want 27", len(e.append(nil)))
	}
	if want := AppendIdempotencyEntry([]byte("x"), e.Context, e.TS, e.Offset, e.Part); string(want[1:]) != string(e.append(nil)) {
		t.Errorf("AppendIdempotencyEntry differs from the tokenizer's encoding")
	}
}

// Values in no known format are errors, not guesses.
func TestIdemEntryCorrupt(t *testing.T) {
	good := idemEntry{Context: contextID("payment", "p"), TS: 1, Offset: 2, Part: 3}.append(nil)
	raw := idemEntry{Context: "plain", TS: 1, Offset: 2, Part: 3}.append(nil)
	padded := append([]byte(nil), good...)
	padded[ctxPackedLen] |= 1
	for name, v := range map[string][]byte{
		"empty": nil, "unknown first byte": {0x03, 1, 2, 3}, "truncated": good[:len(good)-1],
		"trailing byte": append(append([]byte(nil), good...), 0), "padding bits": padded,
		"raw truncated": raw[:4], "raw length past the end": {idemRaw, 0x7f, 'a'},
		"part beyond int32": append(append([]byte{idemRaw, 0}, 2, 2), binaryVarint(1<<40)...),
		"bad JSON":          []byte(`{"ctx":`),
	} {
		if e, err := parseIdem(v); err == nil {
			t.Errorf("%s: parsed as %+v", name, e)
		}
	}
}

func binaryVarint(x int64) []byte { return binary.AppendVarint(nil, x) }

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
