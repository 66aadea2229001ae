//go:build amd64 && !purego

package pan

import "golang.org/x/sys/cpu"

// useAVX2 selects the AVX2 block filter; the portable SWAR one is the
// fallback (and what the purego build tag forces).
var useAVX2 = cpu.X86.HasAVX2

// candMasksAVX2 is implemented in scan_amd64.s.
//
//go:noescape
func candMasksAVX2(p *byte, n int, pd, ps uint64) (off int, c, d, s uint64)

// candMasks returns the offset (from bs) of the first whole 64-byte block
// at or after bs with a candidate, its candidates and its digit and
// separator masks (see candMasksGeneric). With no such block it returns
// the length scanned and zero masks.
func candMasks(b []byte, bs int, pd, ps uint64) (off int, c, d, s uint64) {
	n := (len(b) - bs) &^ (blockSize - 1)
	if n <= 0 {
		return 0, 0, 0, 0
	}
	if useAVX2 {
		return candMasksAVX2(&b[bs], n, pd, ps)
	}
	return candMasksGeneric(b, bs, n, pd, ps)
}
