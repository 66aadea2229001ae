// Package produce writes a benchmark's input to Kafka.
package produce

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// All produces the n records rec builds, without waiting for each, then
// flushes cl. It returns the first error: rec's (nothing more is
// produced), the flush's, or a record's produce error.
func All(ctx context.Context, cl *kgo.Client, n int, rec func(i int) (*kgo.Record, error)) error {
	var (
		mu    sync.Mutex
		first error
	)
	for i := 0; i < n; i++ {
		r, err := rec(i)
		if err != nil {
			return err
		}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return first
}
