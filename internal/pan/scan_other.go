//go:build !amd64 || purego

package pan

// interestMasks: see scan_amd64.go; this is the portable version.
func interestMasks(b []byte, bs int) (int, uint64) {
	n := (len(b) - bs) &^ (blockSize - 1)
	if n <= 0 {
		return 0, 0
	}
	return interestMasksGeneric(b, bs, n)
}
