//go:build !amd64 || purego

package pan

// candMasks: see scan_amd64.go; this is the portable version.
func candMasks(b []byte, bs int, pd, ps uint64, out []byte) (off int, c, d, s uint64) {
	n := (len(b) - bs) &^ (blockSize - 1)
	if n <= 0 {
		return 0, 0, 0, 0
	}
	off, c, d, s = candMasksGeneric(b, bs, n, pd, ps)
	if out != nil {
		copy(out, b[bs:bs+min(n, off+blockSize)])
	}
	return off, c, d, s
}
