package main

import (
	"fmt"
	"testing"
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
		if g, w := string(appendEntryValue(nil, i)), fmt.Sprintf(`{"ctx":"ctx_abcdefghijklmnopqrstuvwxyz","ts":%d,"off":%d}`, baseTS+int64(i), i); g != w {
			t.Fatalf("value %d: %q, want %q", i, g, w)
		}
		if g, w := string(appendToken(nil, i%100000, true)), sortedVaultToken(i%100000); g != w {
			t.Fatalf("token %d: %q, want %q", i, g, w)
		}
	}
}
