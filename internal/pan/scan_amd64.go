//go:build amd64 && !purego

package pan

import "golang.org/x/sys/cpu"

// useAVX2 selects the AVX2 block scanner; the portable SWAR one is the
// fallback (and what the purego build tag forces).
var useAVX2 = cpu.X86.HasAVX2

// endMasksAVX2 is implemented in scan_amd64.s.
//
//go:noescape
func endMasksAVX2(p *byte, n int, prev uint64) (off int, mask uint64)

// endMasks returns the offset (from bs) of the first 64-byte block at or
// after bs, among the whole blocks before len(b), that ends a run of four
// digits, and that block's end mask; prev is the digit bit mask of the
// 64 bytes before bs (top three bits used). With no such block it returns
// the length scanned and 0.
func endMasks(b []byte, bs int, prev uint64) (int, uint64) {
	n := (len(b) - bs) &^ (blockSize - 1)
	if n <= 0 {
		return 0, 0
	}
	if useAVX2 {
		return endMasksAVX2(&b[bs], n, prev)
	}
	return endMasksGeneric(b, bs, n, prev)
}
