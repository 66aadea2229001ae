//go:build !amd64 || purego

package pan

// candMasks: see scan_amd64.go; this is the portable version.
func candMasks(b []byte, bs int, pd, ps uint64) (off int, c, d, s uint64) {
	n := (len(b) - bs) &^ (blockSize - 1)
	if n <= 0 {
		return 0, 0, 0, 0
	}
	return candMasksGeneric(b, bs, n, pd, ps)
}
