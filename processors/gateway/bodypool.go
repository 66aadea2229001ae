package gateway

import "sync"

// bodyBufSize is the capacity of a pooled request body buffer: payment
// bodies are a few hundred bytes; a larger one gets its own allocation.
const bodyBufSize = 2048

// bodyBuf is a pooled request body buffer.
type bodyBuf struct{ b []byte }

// bodyPool recycles request body buffers: one allocation less per request.
// A buffer is cleared before it goes back (it held card data).
type bodyPool struct{ p sync.Pool }

func (bp *bodyPool) get() *bodyBuf {
	if b, ok := bp.p.Get().(*bodyBuf); ok {
		return b
	}
	return &bodyBuf{b: make([]byte, 0, bodyBufSize)}
}

// put clears body (read into buf or, when larger, into its own
// allocation) and returns buf to the pool.
func (bp *bodyPool) put(buf *bodyBuf, body []byte) {
	clear(body)
	bp.p.Put(buf)
}
