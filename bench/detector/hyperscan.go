//go:build hyperscan

package detector

/*
#cgo pkg-config: libhs
#include <hs.h>
#include <stdlib.h>

typedef struct {
	unsigned long long *from, *to;
	size_t n, cap;
} matches;

static int on_match(unsigned int id, unsigned long long from, unsigned long long to, unsigned int flags, void *ctx) {
	matches *m = (matches *)ctx;
	if (m->n == m->cap) {
		size_t c = m->cap ? m->cap * 2 : 1024;
		unsigned long long *f = realloc(m->from, c * sizeof *f);
		unsigned long long *t = realloc(m->to, c * sizeof *t);
		if (!f || !t) return 1; // stop scanning
		m->from = f; m->to = t; m->cap = c;
	}
	m->from[m->n] = from;
	m->to[m->n] = to;
	m->n++;
	return 0;
}

static hs_error_t scan(hs_database_t *db, const char *data, unsigned int len, hs_scratch_t *s, matches *m) {
	m->n = 0;
	return hs_scan(db, data, len, 0, s, on_match, m);
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Hyperscan is a compiled block-mode Hyperscan database with its scratch
// space and match buffer. Not safe for concurrent use.
type Hyperscan struct {
	db      *C.hs_database_t
	scratch *C.hs_scratch_t
	m       C.matches
}

// NewHyperscan compiles pattern in block mode. Start-of-match reporting
// (HS_FLAG_SOM_LEFTMOST) would hand Luhn the exact match, but Hyperscan
// rejects the published pattern with it ("Pattern is too large"), so only
// match ends are reported.
func NewHyperscan(pattern string) (*Hyperscan, error) {
	cp := C.CString(pattern)
	defer C.free(unsafe.Pointer(cp))
	var db *C.hs_database_t
	var cerr *C.hs_compile_error_t
	if C.hs_compile(cp, 0, C.HS_MODE_BLOCK, nil, &db, &cerr) != C.HS_SUCCESS {
		msg := C.GoString(cerr.message)
		C.hs_free_compile_error(cerr)
		return nil, fmt.Errorf("hs_compile %q: %s", pattern, msg)
	}
	h := &Hyperscan{db: db}
	if C.hs_alloc_scratch(db, &h.scratch) != C.HS_SUCCESS {
		C.hs_free_database(db)
		return nil, fmt.Errorf("hs_alloc_scratch failed")
	}
	return h, nil
}

// Scan reports every match end of the pattern in data to fn (from is 0
// without start-of-match reporting). Hyperscan reports all matches,
// including overlapping ones.
func (h *Hyperscan) Scan(data []byte, fn func(from, to int)) error {
	if len(data) == 0 {
		return nil
	}
	if rc := C.scan(h.db, (*C.char)(unsafe.Pointer(&data[0])), C.uint(len(data)), h.scratch, &h.m); rc != C.HS_SUCCESS {
		return fmt.Errorf("hs_scan: error %d", int(rc))
	}
	from := unsafe.Slice(h.m.from, h.m.n)
	to := unsafe.Slice(h.m.to, h.m.n)
	for i := range from {
		fn(int(from[i]), int(to[i]))
	}
	return nil
}

// Close frees the database, scratch and buffers.
func (h *Hyperscan) Close() {
	C.hs_free_scratch(h.scratch)
	C.hs_free_database(h.db)
	C.free(unsafe.Pointer(h.m.from))
	C.free(unsafe.Pointer(h.m.to))
}
