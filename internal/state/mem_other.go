//go:build !linux

package state

// bigBuf returns an empty byte slice of capacity n and a no-op release.
func bigBuf(n int) ([]byte, func()) { return make([]byte, 0, n), func() {} }
