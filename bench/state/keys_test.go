package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/processors/tokenizer"
)

// The hand-written formatting is the bytes fmt wrote before (the same
// keys and values as earlier benchmark runs).
func TestEntryFormat(t *testing.T) {
	for _, i := range []int{0, 1, 9, 10, 123456, 999999999999, 1 << 40} {
		if g, w := string(appendEntryKey(nil, i)), fmt.Sprintf("idem-%08x-%012d", uint32(i)*2654435761, i); g != w {
			t.Fatalf("key %d: %q, want %q", i, g, w)
		}
		if g, w := string(appendSortedKey([]byte("x"), i)), fmt.Sprintf("xidem-%012d-%08x", i, uint32(i)*2654435761); g != w {
			t.Fatalf("sorted key %d: %q, want %q", i, g, w)
		}
		c := string(appendContextID(nil, i))
		if g, w := appendEntryValue(nil, i), tokenizer.AppendIdempotencyEntry(nil, c, baseTS+int64(i), int64(i), 0); string(g) != string(w) {
			t.Fatalf("value %d: %x, want %x", i, g, w)
		}
		if g, w := string(appendToken(nil, i%100000, true)), sortedVaultToken(i%100000); g != w {
			t.Fatalf("token %d: %q, want %q", i, g, w)
		}
	}
}

// Context ids look like the tokenizer's: "ctx_" and 26 letters of the token
// alphabet, different per key, each letter about equally frequent.
func TestContextIDs(t *testing.T) {
	seen := map[string]bool{}
	var counts [256]int
	for i := 0; i < 10000; i++ {
		c := string(appendContextID(nil, i))
		if len(c) != 30 || !strings.HasPrefix(c, "ctx_") || seen[c] {
			t.Fatalf("context id %d: %q (duplicate: %v)", i, c, seen[c])
		}
		seen[c] = true
		for _, l := range []byte(c[4:]) {
			if strings.IndexByte(token.Alphabet, l) < 0 {
				t.Fatalf("context id %d: %q has a letter outside the token alphabet", i, c)
			}
			counts[l]++
		}
	}
	for _, l := range []byte(token.Alphabet) {
		if n := counts[l]; n < 7000 || n > 9300 { // 260,000 letters / 32 = 8125 each
			t.Errorf("letter %q appears %d times in 10,000 ids", l, n)
		}
	}
}
