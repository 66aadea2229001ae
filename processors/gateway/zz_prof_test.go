package gateway_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pcistream/pcistream/processors/gateway"
)

func TestZZProfile(t *testing.T) {
	e := newEnv(t, nil, gateway.NoopRoute())
	e.logs = &syncBuffer{}
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(8 * time.Second)
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				r := e.post("/v1/payments", paymentJSON(id, testCards[0]), "Idempotency-Key", id)
				if r.status != 202 {
					t.Errorf("%d", r.status)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	e.answers = nil
	t.Logf("%d requests", n.Load())
}
