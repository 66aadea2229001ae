//go:build amd64 && !purego

package pan

import "golang.org/x/sys/cpu"

// useAVX2 selects the AVX2 block filter (which also uses BMI1, BMI2 and
// POPCNT, present on every AVX2 CPU in practice); the portable SWAR one is
// the fallback (and what the purego build tag forces).
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasBMI1 && cpu.X86.HasBMI2 && cpu.X86.HasPOPCNT

// candMasksAVX2 is implemented in scan_amd64.s.
//
//go:noescape
func candMasksAVX2(p *byte, n int, pd, ps uint64, dst *byte) (off int, c, d, s uint64)

// candMasks returns the offset (from bs) of the first whole 64-byte block
// at or after bs with a candidate, its candidates and its digit and
// separator masks (see candMasksGeneric). With no such block it returns
// the length scanned and zero masks. With out non-nil (len(out) >= len(b)-bs)
// it also copies the blocks it scanned, the returned one included, to out
// (out[k] is b[bs+k]).
func candMasks(b []byte, bs int, pd, ps uint64, out []byte) (off int, c, d, s uint64) {
	n := (len(b) - bs) &^ (blockSize - 1)
	if n <= 0 {
		return 0, 0, 0, 0
	}
	if useAVX2 {
		var dst *byte
		if out != nil {
			dst = &out[:n][0]
		}
		return candMasksAVX2(&b[bs], n, pd, ps, dst)
	}
	off, c, d, s = candMasksGeneric(b, bs, n, pd, ps)
	if out != nil {
		copy(out, b[bs:bs+min(n, off+blockSize)])
	}
	return off, c, d, s
}
