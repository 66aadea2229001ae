//go:build amd64 && !purego

package pan

import "golang.org/x/sys/cpu"

// useAVX2 selects the AVX2 block filter; the portable SWAR one is the
// fallback (and what the purego build tag forces).
var useAVX2 = cpu.X86.HasAVX2

// interestMasksAVX2 is implemented in scan_amd64.s.
//
//go:noescape
func interestMasksAVX2(p *byte, n int) (off int, mask uint64)

// interestMasks returns the offset (from bs) of the first whole 64-byte
// block at or after bs that holds a byte of the interest set (one that can
// start a digit in some encoding: ASCII digits, '%', '\\', '&', UTF-8 lead
// bytes), and that block's bit mask. With no such block it returns the
// length scanned and 0.
func interestMasks(b []byte, bs int) (int, uint64) {
	n := (len(b) - bs) &^ (blockSize - 1)
	if n <= 0 {
		return 0, 0
	}
	if useAVX2 {
		return interestMasksAVX2(&b[bs], n)
	}
	return interestMasksGeneric(b, bs, n)
}
