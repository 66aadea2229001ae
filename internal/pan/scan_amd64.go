//go:build amd64 && !purego

package pan

import "golang.org/x/sys/cpu"

// useAVX2 selects the AVX2 block filter; the portable SWAR one is the
// fallback (and what the purego build tag forces).
var useAVX2 = cpu.X86.HasAVX2

// blockMasksAVX2 is implemented in scan_amd64.s.
//
//go:noescape
func blockMasksAVX2(p *byte, n int) (off int, d, s, i uint64)

// blockMasks returns the offset (from bs) of the first whole 64-byte block
// at or after bs that holds an ASCII digit or a byte that can start an
// encoded digit, and that block's masks (see blockMasksGeneric). With no
// such block it returns the length scanned and zero masks.
func blockMasks(b []byte, bs int) (off int, d, s, i uint64) {
	n := (len(b) - bs) &^ (blockSize - 1)
	if n <= 0 {
		return 0, 0, 0, 0
	}
	if useAVX2 {
		return blockMasksAVX2(&b[bs], n)
	}
	return blockMasksGeneric(b, bs, n)
}
