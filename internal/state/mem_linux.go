//go:build linux

package state

import "golang.org/x/sys/unix"

// bigBuf returns an empty byte slice of capacity n for a bulk restore's
// chunk, and the function that releases it. On Linux it is mapped outside
// the Go heap and backed by transparent huge pages where the kernel allows
// (the default "madvise" mode): sorting and writing a chunk reads its
// records in key order, i.e. at random, and with 4 KiB pages nearly every
// such read also missed the TLB. Outside the heap it costs the garbage
// collector nothing and is returned to the kernel at once.
func bigBuf(n int) ([]byte, func()) {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return make([]byte, 0, n), func() {}
	}
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // advisory: 4 KiB pages still work
	return b[:0], func() { _ = unix.Munmap(b) }
}
