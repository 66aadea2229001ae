package tokenizer

import (
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkIdemStateCost measures the tokenizer's idempotency state in
// memory: heap bytes per committed key, for growing key counts, with keys
// and context ids shaped as the tokenizer writes them, committed in
// transactions of 1000 over 3 partitions. bench/run.sh plots it
// (bench/tokenizer-state.png).
func BenchmarkIdemStateCost(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			var perKey float64
			for range b.N {
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				s := newIdemState(DefaultIdempotencyWindow)
				for p := int32(0); p < 3; p++ {
					s.set(p, map[string]idemEntry{})
				}
				for k := range n {
					s.add(int32(k%3), fmt.Sprintf("idem-%012d", k),
						idemEntry{Context: fmt.Sprintf("ctx-%022d", k), TS: int64(k), Offset: int64(k / 3)})
					if k%1000 == 999 {
						s.end(true)
					}
				}
				s.end(true)
				runtime.GC()
				runtime.ReadMemStats(&m1)
				if s.size() != n {
					b.Fatalf("state holds %d keys, want %d", s.size(), n)
				}
				perKey = float64(m1.HeapAlloc-m0.HeapAlloc) / float64(n)
				runtime.KeepAlive(s)
			}
			b.ReportMetric(perKey, "heap-bytes/key")
		})
	}
}
