package devstack

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pcistream/pcistream/internal/kafkax"
)

// repairCrashAborts runs when the broker starts on a data dir a crash left
// behind. kfake aborts the transactions that were open at the crash but
// writes no abort markers; read_committed clients (franz-go's included)
// then also drop the next committed transaction of the same producer, and
// a restore that waits for the record at the last stable offset never ends.
// Until every such transaction has its marker, InitProducerID answers
// COORDINATOR_LOAD_IN_PROGRESS (retriable, as on a real broker loading its
// transaction log), so no producer writes before the marker.
func (s *Stack) repairCrashAborts(ctx context.Context, c *kfake.Cluster) (int, error) {
	var repairing atomic.Bool
	repairing.Store(true)
	c.ControlKey(int16(kmsg.InitProducerID), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		if !repairing.Load() {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		resp := kreq.ResponseKind().(*kmsg.InitProducerIDResponse)
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		return resp, nil, true
	})
	defer repairing.Store(false)

	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		return 0, fmt.Errorf("devstack: listing topics for crash repair: %w", err)
	}
	n := 0
	for _, t := range td.Names() {
		open, err := kafkax.MarkerlessAborts(ctx, cl, t)
		if err != nil {
			return n, fmt.Errorf("devstack: scanning %s for transactions a crash left open: %w", t, err)
		}
		if err := kafkax.WriteAbortMarkers(ctx, cl, t, open); err != nil {
			return n, fmt.Errorf("devstack: closing transactions a crash left open: %w", err)
		}
		n += len(open)
	}
	return n, nil
}
