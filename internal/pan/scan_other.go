//go:build !amd64 || purego

package pan

// blockMasks: see scan_amd64.go; this is the portable version.
func blockMasks(b []byte, bs int) (off int, d, s, i uint64) {
	n := (len(b) - bs) &^ (blockSize - 1)
	if n <= 0 {
		return 0, 0, 0, 0
	}
	return blockMasksGeneric(b, bs, n)
}
