package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fenceTimeout bounds the wait for an earlier run's transaction to settle.
const fenceTimeout = 2 * time.Minute

// fence initializes the job's transactional id once before anything of the
// job is read. The coordinator answers only when the id's last transaction
// is complete: a committing one has its markers written to every partition
// (a real broker writes them after answering EndTxn, so a re-run started at
// once would otherwise read the job's state and progress without its last
// commit), an open one (a killed run) is aborted.
func fence(ctx context.Context, cl *kgo.Client, txnID string) error {
	ctx, cancel := context.WithTimeout(ctx, fenceTimeout)
	defer cancel()
	for {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID = &txnID
		req.TransactionTimeoutMillis = 60_000
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, kerr.ConcurrentTransactions), errors.Is(err, kerr.CoordinatorLoadInProgress),
			errors.Is(err, kerr.NotCoordinator), errors.Is(err, kerr.CoordinatorNotAvailable):
			select {
			case <-ctx.Done():
				return fmt.Errorf("settle the earlier runs' transactions of %s: %w (last: %v)", txnID, ctx.Err(), err)
			case <-time.After(50 * time.Millisecond):
			}
		default:
			return fmt.Errorf("settle the earlier runs' transactions of %s (may this principal use the transactional id?): %w", txnID, err)
		}
	}
}
