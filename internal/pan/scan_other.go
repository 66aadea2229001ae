//go:build !amd64 || purego

package pan

// endMasks: see scan_amd64.go; this is the portable version.
func endMasks(b []byte, bs int, prev uint64) (int, uint64) {
	n := (len(b) - bs) &^ (blockSize - 1)
	if n <= 0 {
		return 0, 0
	}
	return endMasksGeneric(b, bs, n, prev)
}
