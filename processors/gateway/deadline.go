package gateway

import (
	"context"
	"sync"
	"time"
)

// deadlines hands out request deadlines shared by the requests that start
// within the same short slot: one context (and one runtime timer) per slot
// instead of a context.WithTimeout per request, which cost a timer, a
// context, a channel and a registration with the request's context on the
// payment path. A request started at t gets a deadline between t+d and
// t+d+slot.
//
// The shared context is not tied to the request's own: a request whose
// client went away still finishes (or times out) instead of being
// abandoned. That is harmless: its payment is either committed, and a
// retry replays it, or not, and a retry writes it.
type deadlines struct {
	d, slot time.Duration

	mu     sync.Mutex
	cur    context.Context
	cancel context.CancelFunc // of cur: the timer releases it at the deadline
	until  time.Time          // cur is handed out to requests starting before
}

func newDeadlines(d time.Duration) *deadlines {
	return &deadlines{d: d, slot: min(5*time.Millisecond, d/20)}
}

// get returns a context that ends between d and d+slot from now (real
// time, whatever the gateway's clock).
func (s *deadlines) get() context.Context {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || !now.Before(s.until) {
		// The previous slot's context is left to its timer: requests
		// still hold it.
		s.cur, s.cancel = context.WithDeadline(context.Background(), now.Add(s.d+s.slot))
		s.until = now.Add(s.slot)
	}
	return s.cur
}
