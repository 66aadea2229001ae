package tokenizer

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"

	"github.com/pcistream/pcistream/internal/state"
)

// BenchmarkIdemStateCost measures the tokenizer's idempotency state in
// memory: Go heap bytes per committed key, for growing key counts, with keys
// and entries shaped as the tokenizer writes them, committed in batches of
// 1000 over 3 partitions to the Pebble store the tokenizer uses (default
// cache). The state lives on disk, so the memory it holds is bounded by the
// block cache and memtables whatever the key count, and the per-key figure
// falls as keys grow (with cgo Pebble keeps its cache outside the Go heap;
// this counts the Go heap only).
// bench/run.sh plots it (bench/tokenizer-state.png).
func BenchmarkIdemStateCost(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			var perKey float64
			for range b.N {
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				s, err := state.Open(b.TempDir(), state.StoreOpts{})
				if err != nil {
					b.Fatal(err)
				}
				puts := make([]state.Put, 0, 1000)
				next := [3]int64{}
				flush := func(p int32) {
					next[p] += int64(len(puts))
					if err := s.Apply(p, puts, state.Checkpoint{Next: next[p]}); err != nil {
						b.Fatal(err)
					}
					puts = puts[:0]
				}
				for k := range n {
					v := idemEntry{Context: contextID("bench", strconv.Itoa(k)), TS: int64(k), Offset: int64(k / 3), Part: int32(k % 3)}.append(nil)
					puts = append(puts, state.Put{Key: fmt.Appendf(nil, "idem-%012d", k), Value: v, TS: int64(k)})
					if len(puts) == cap(puts) {
						flush(int32((k / 1000) % 3))
					}
				}
				if len(puts) > 0 {
					flush(0)
				}
				runtime.GC()
				runtime.ReadMemStats(&m1)
				total := 0
				for p := int32(0); p < 3; p++ {
					c, err := s.Count(p)
					if err != nil {
						b.Fatal(err)
					}
					total += c
				}
				if total != n {
					b.Fatalf("state holds %d keys, want %d", total, n)
				}
				perKey = float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(n)
				runtime.KeepAlive(s)
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(perKey, "heap-bytes/key")
		})
	}
}
