package state

// A restore reads a changelog partition up to its last stable offset. That
// misses a transaction the coordinator has decided to commit (PrepareCommit)
// whose marker has not reached the partition yet: Kafka answers EndTxn, and
// writes the transaction's offsets marker to __consumer_offsets, before or
// after the markers of its other partitions, in no set order. At a
// partition handoff that is the previous owner's last transaction: the new
// owner's offsets already skip its input records (the group's offsets are
// stable once that marker is written, KIP-447), while its changelog entries
// are still above the last stable offset. A restore ending there would
// forget those keys for the whole assignment, and a retry of one of them
// would be processed twice.
//
// So before the first record of an assignment, the table asks the partition
// leader which producers hold a transaction open there (DescribeProducers)
// and their coordinators which of those are committing (ListTransactions),
// and restores on past them. The tokenizer has this done before a batch's
// transaction starts (eos.BatchStarter), so the wait runs no transaction
// timeout down. Open transactions that are not committing are
// not waited for: after the handoff they can no longer commit this
// partition's offsets (KIP-447 fences the old generation), so their entries
// will never be read.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// defaultPartialAfter is how long settle waits for every broker to answer
// ListTransactions before it goes on with the answers it has, asking at
// most askTimeout at a time.
const (
	defaultPartialAfter = 10 * time.Second
	askTimeout          = 5 * time.Second
)

// committingStates are the coordinator states of a transaction decided to
// commit whose markers may still be on their way. Kafka moves to
// CompleteCommit only once every marker is written.
var committingStates = []string{"PrepareCommit"}

// committing returns the lowest first offset in part of a transaction that
// is committing but whose marker part has not received, or -1 if there is
// none. ListTransactions goes to every broker: unanswered counts those that
// did not answer when others did, whose transactions are not in the result.
func (c *Changelog) committing(ctx context.Context, adm *kadm.Client, part int32) (first int64, unanswered int, err error) {
	prods, err := adm.DescribeProducers(ctx, kadm.TopicsSet{c.Topic: {part: {}}})
	if err != nil {
		return 0, 0, fmt.Errorf("state: describing the producers of %s[%d] (DescribeProducers, Kafka 3.0 or later): %w", c.Topic, part, err)
	}
	dp, ok := prods[c.Topic].Partitions[part]
	if !ok {
		return 0, 0, fmt.Errorf("state: describing the producers of %s[%d]: the partition is not in the answer", c.Topic, part)
	}
	if dp.Err != nil {
		return 0, 0, fmt.Errorf("state: describing the producers of %s[%d]: %w", c.Topic, part, dp.Err)
	}
	starts := map[int64]int64{}
	var ids []int64
	for _, p := range dp.ActiveProducers {
		if p.CurrentTxnStartOffset >= 0 {
			starts[p.ProducerID] = p.CurrentTxnStartOffset
			ids = append(ids, p.ProducerID)
		}
	}
	if len(ids) == 0 {
		return -1, 0, nil
	}
	txns, err := adm.ListTransactions(ctx, ids, committingStates)
	if se := (*kadm.ShardErrors)(nil); errors.As(err, &se) && !se.AllFailed {
		unanswered, err = len(se.Errs), nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("state: asking the brokers which transactions open in %s[%d] are committing (ListTransactions, Kafka 3.0 or later): %w", c.Topic, part, err)
	}
	first = -1
	for _, t := range txns {
		// Filter again: brokers before ListTransactions v1 ignore the
		// state filter.
		start, open := starts[t.ProducerID]
		if open && slices.Contains(committingStates, t.State) && (first < 0 || start < first) {
			first = start
		}
	}
	return first, unanswered, nil
}

// admin returns an admin client over c.Admin or a new client, and the
// function that releases it.
func (c *Changelog) admin() (*kadm.Client, func(), error) {
	if c.Admin != nil {
		return kadm.NewClient(c.Admin), func() {}, nil
	}
	cl, err := kgo.NewClient(c.ClientOpts...)
	if err != nil {
		return nil, nil, fmt.Errorf("state: kafka client: %w", err)
	}
	return kadm.NewClient(cl), cl.Close, nil
}

// settle makes sure ps, restored, holds every transaction committed into
// part so far: none is committing above it (see the top of this file) and
// the last stable offset is not above its checkpoint. Otherwise it restores
// the partition's tail, once the marker is there, and returns true: the
// caller waits for that restore and settles again. Call it only once the
// group's offsets of part were fetched: a transaction that committed them
// is then at least committing.
func (t *Table) settle(ctx context.Context, part int32, ps *partition) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(ps.ctx, cancel)() // revoked, replaced or closed
	cp, _, err := t.store.Checkpoint(part)
	if err != nil {
		return false, err
	}
	adm, done, err := t.cl.admin() // one client for every ask and retry
	if err != nil {
		return false, err
	}
	defer done()
	began, partialAfter := time.Now(), cmp.Or(t.cl.partialAfter, defaultPartialAfter)
	start, err := t.retrying(ctx, part, ps, func() (int64, error) {
		actx, cancel := context.WithTimeout(ctx, askTimeout)
		defer cancel()
		first, unanswered, err := t.cl.committing(actx, adm, part)
		if err == nil && unanswered > 0 {
			// A broker that does not answer coordinates nothing
			// reachable; its transactions cannot end meanwhile either.
			// Wait a little for it, not for as long as it is down.
			if time.Since(began) < partialAfter {
				return 0, fmt.Errorf("state: %s[%d]: %d brokers did not answer ListTransactions", t.cl.Topic, part, unanswered)
			}
			t.o.Logger.Warn("state partition settled without the transactions of brokers that do not answer",
				"topic", t.cl.Topic, "partition", part, "brokers", unanswered)
		}
		return first, err
	})
	if err != nil {
		return false, err
	}
	if start >= cp.Next {
		t.o.Logger.Info("a transaction committing into the restored state has not reached it yet: waiting for its marker",
			"topic", t.cl.Topic, "partition", part, "offset", start)
	}
	end, err := t.retrying(ctx, part, ps, func() (int64, error) {
		_, end, err := t.cl.bounds(ctx, adm, part)
		if err == nil && start >= cp.Next && end <= start {
			err = fmt.Errorf("state: %s[%d]: last stable offset %d, waiting for the marker of the transaction committing from offset %d", t.cl.Topic, part, end, start)
		}
		return end, err
	})
	if err != nil {
		return false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.parts[part] != ps:
		return true, nil // replaced meanwhile: wait for what replaced it
	case end > cp.Next: // committed since the restore listed (or a marker)
		t.startLocked(part, ps.onRestored)
		return true, nil
	}
	ps.settled = true
	return false, nil
}

// retrying calls fn until it succeeds or ctx ends, backing off up to a
// second. The partition is not processed meanwhile: after 5 s of failures
// it logs every 5 s, and Ready reports the last error until fn succeeds.
func (t *Table) retrying(ctx context.Context, part int32, ps *partition, fn func() (int64, error)) (int64, error) {
	delay, logged := 10*time.Millisecond, time.Now()
	held := func(err error) {
		t.mu.Lock()
		ps.Err = err
		t.mu.Unlock()
	}
	for {
		v, err := fn()
		if err == nil {
			held(nil)
			return v, nil
		}
		if time.Since(logged) >= 5*time.Second {
			t.o.Logger.Warn("state partition held back: retrying", "topic", t.cl.Topic, "partition", part, "err", err)
			held(err)
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}
