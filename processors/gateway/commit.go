package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrUnavailable means Kafka did not durably accept the records in time (or
// the gateway is over its budget): the caller answers 503 and the client
// retries with the same Idempotency-Key.
var ErrUnavailable = errors.New("kafka unavailable")

// Committer writes a group of records atomically and durably: Commit returns
// nil only once every record is written (acks=all) and its transaction
// committed, and an error when they are not (yet): ctx ended first, or the
// transaction failed. (Kafka answers the commit before it writes the
// transaction's markers: read_committed readers see the records a moment
// later, and a reader that must see them reads up to the high watermark,
// as the idempotency check does.) A Write with a Key is written only if
// no entry of its Key was committed before the request (see Write); else
// Commit returns a *KeyExistsError and writes nothing.
type Committer interface {
	Commit(ctx context.Context, w Write) error
}

// Write is one request's records for a Committer.
type Write struct {
	Recs []*kgo.Record
	// Key, when not nil, is the request's Idempotency-Key, which the
	// caller did not find in its local store. The committer checks it
	// again after the request was queued, against everything committed by
	// any instance before that (KeyChecker): found, it answers with a
	// *KeyExistsError holding the entry and writes nothing.
	Key []byte
	// Now is the request's time: Key's entry counts if it is within the
	// window before it.
	Now time.Time
	// Settled, when not nil, is called exactly once with the final
	// outcome, possibly after Commit returned: nil when the records
	// committed, an error once they can no longer become visible (found,
	// skipped, aborted, or a transaction of unknown outcome past its
	// transaction timeout). The gateway holds a request's Idempotency-Key
	// until then, so a retry never races a slow first commit.
	Settled func(error)
}

// KeyExistsError is Commit's answer to a Write whose Key was committed
// before: nothing was written, and Entry is the first request's entry.
type KeyExistsError struct{ Entry IdemEntry }

func (e *KeyExistsError) Error() string {
	return "the Idempotency-Key was committed by an earlier request"
}

// errStateUnavailable marks Commit errors of the idempotency check (the
// state could not be read up to date), wrapped with ErrUnavailable.
var errStateUnavailable = errors.New("idempotency state not up to date")

// Commit phases reported to TxnCommitterConfig.ObservePhase.
const (
	// PhaseQueue is a request's wait for a transaction to take it.
	PhaseQueue = "queue"
	// PhaseKeyCheck is a transaction's Idempotency-Key check: the listing
	// of end offsets and the wait for the state to read up to them, both
	// under way while the transaction's records are produced; the phase is
	// the part left once the produce is acknowledged.
	PhaseKeyCheck = "key_check"
	// PhaseApply is recording a committed transaction's idempotency
	// entries in the local store (OnCommitted), before the answers.
	PhaseApply = "apply"
)

// KeyChecker is what the committer checks Idempotency-Keys against (the
// StateStore).
type KeyChecker interface {
	// ListKeyEnds lists, now, the end offsets of the keys' partitions:
	// every entry committed before the call lies below them.
	ListKeyEnds(ctx context.Context, keys [][]byte) (map[int32]int64, error)
	// WaitFor returns once every entry below ends is visible to Find,
	// except that a partition's wait stops below the caller's records in
	// open, its own transaction still open there.
	WaitFor(ctx context.Context, ends map[int32]int64, open []*kgo.Record) error
	// Find returns key's entry if it is within the window before now.
	Find(key []byte, now time.Time) (IdemEntry, bool, error)
}

// TxnCommitter is the gateway's Kafka writer: a small pool of transactional
// producers that group-commit concurrent requests. Each request's records
// (the payment on payments.raw and its Idempotency-Key entry, or a vault
// entry and its audit event) go into one transaction, so a crash can never
// leave one without the other; requests arriving while a transaction
// commits are batched into the next one, which amortises the commit round
// trips under load.
//
// Each transaction checks the Idempotency-Keys of its requests once
// (KeyChecker), before it commits: it lists the keys' partitions' end
// offsets and, while that listing and the state's catch-up run, produces
// the records, so the check costs no round trip of its own. The wait
// stops below the transaction's own records (their offsets are known once
// the produce is acknowledged): every transaction committed by anyone
// before the batch formed was written before these records, so lies below
// them as well as below the listed ends. A key found committed then is
// answered from its entry, and the transaction is aborted and its other
// requests written again in a new one, so nothing of the found key is ever
// committed; that happens only for a retry that reached this instance
// before the first request's entry did.
type TxnCommitter struct {
	opts       []kgo.Opt
	txnID      string
	workers    int
	maxBatch   int
	timeout    time.Duration
	log        *slog.Logger
	observe    func(time.Duration, bool)
	phase      func(string, time.Duration)
	onCommit   func([]*kgo.Record) error
	keys       KeyChecker
	checkAbort func()

	queue   chan *pending
	healthy atomic.Bool
	lastErr atomic.Pointer[string]
}

type pending struct {
	ctx     context.Context
	recs    []*kgo.Record
	key     []byte
	now     time.Time
	queued  time.Time
	done    chan error
	settled func(error)
}

// settle answers the request and reports the final outcome.
func (p *pending) settle(err error) {
	p.done <- err
	if p.settled != nil {
		p.settled(err)
	}
}

// TxnCommitterConfig configures a TxnCommitter.
type TxnCommitterConfig struct {
	// ClientOpts connect to the cluster (kafkax.Opts).
	ClientOpts []kgo.Opt
	// TransactionalID is the prefix of the producers' transactional ids
	// (<id>-0, <id>-1, ...): stable across restarts of one instance and
	// unique per live instance, so a restarted instance fences its
	// predecessor's open transactions.
	TransactionalID string
	// Producers is the number of transactional producers (default 1):
	// requests arriving while a transaction commits form the next one. More
	// producers lower latency at low load and cost CPU per request (smaller
	// transactions); see bench/RESULTS.md. A transaction's key check waits
	// for the transactions other producers have open on the idempotency
	// topic (its barrier is the high watermark, see StateStore), so with
	// more than one they mostly alternate.
	Producers int
	// MaxBatch bounds the requests in one transaction (default 512).
	MaxBatch int
	// Timeout bounds one transaction, produce to commit (default 3s).
	Timeout time.Duration
	// Queue bounds the requests waiting for a producer (default 4096);
	// beyond it Commit fails at once with ErrUnavailable.
	Queue int
	// Logger receives producer errors (never record contents).
	Logger *slog.Logger
	// Observe, when set, is called with each transaction's duration and
	// outcome (the produce-latency metric).
	Observe func(d time.Duration, ok bool)
	// ObservePhase, when set, is called with the time spent in the other
	// phases of a commit: PhaseQueue per request, PhaseKeyCheck and
	// PhaseApply per transaction (where latency goes, next to Observe).
	ObservePhase func(phase string, d time.Duration)
	// OnCommitted, when set, is called with every record of a committed
	// transaction (partitions and offsets set) before any of its requests
	// is answered: the idempotency store learns its own writes there.
	OnCommitted func(recs []*kgo.Record) error
	// Keys checks the Idempotency-Keys of Writes that carry one, once per
	// transaction (see TxnCommitter); without it such Writes fail.
	Keys KeyChecker
	// KeyCheckAborted, when set, is called for each transaction aborted
	// because its key check answered some of its requests (found
	// committed, or not checkable); the others are written again.
	KeyCheckAborted func()
}

// NewTxnCommitter returns a committer; Run starts its producers.
func NewTxnCommitter(c TxnCommitterConfig) (*TxnCommitter, error) {
	if c.TransactionalID == "" {
		return nil, errors.New("gateway: a transactional id is required (--transactional-id)")
	}
	if c.Producers <= 0 {
		c.Producers = 1
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 512
	}
	if c.Timeout <= 0 {
		c.Timeout = 3 * time.Second
	}
	if c.Queue <= 0 {
		c.Queue = 4096
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observe == nil {
		c.Observe = func(time.Duration, bool) {}
	}
	if c.ObservePhase == nil {
		c.ObservePhase = func(string, time.Duration) {}
	}
	if c.KeyCheckAborted == nil {
		c.KeyCheckAborted = func() {}
	}
	tc := &TxnCommitter{
		opts: c.ClientOpts, txnID: c.TransactionalID, workers: c.Producers, maxBatch: c.MaxBatch,
		timeout: c.Timeout, log: c.Logger, observe: c.Observe, phase: c.ObservePhase, onCommit: c.OnCommitted, keys: c.Keys, checkAbort: c.KeyCheckAborted,
		queue: make(chan *pending, c.Queue),
	}
	// Ready until a transaction fails: an idle gateway must not be taken
	// out of a load balancer for lack of traffic.
	tc.healthy.Store(true)
	return tc, nil
}

// Commit implements Committer. It fails at once when the queue is full
// (fail closed under pressure) and when ctx ends before the commit.
func (c *TxnCommitter) Commit(ctx context.Context, w Write) error {
	p := &pending{ctx: ctx, recs: w.Recs, key: w.Key, now: w.Now, queued: time.Now(), done: make(chan error, 1), settled: w.Settled}
	select {
	case c.queue <- p:
	default:
		err := fmt.Errorf("%w: %d requests already waiting for a Kafka transaction", ErrUnavailable, cap(c.queue))
		if p.settled != nil {
			p.settled(err)
		}
		return err
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		// A request that timed out waiting makes the gateway unready until
		// a transaction commits again.
		msg := "a request timed out waiting for its Kafka transaction"
		c.lastErr.Store(&msg)
		c.healthy.Store(false)
		return fmt.Errorf("%w: no commit within the request deadline: %w", ErrUnavailable, ctx.Err())
	}
}

// Ready reports whether the last transaction (if any) committed and no
// request has timed out waiting since.
func (c *TxnCommitter) Ready() error {
	if c.healthy.Load() {
		return nil
	}
	if e := c.lastErr.Load(); e != nil {
		return fmt.Errorf("last Kafka transaction failed: %s", *e)
	}
	return errors.New("last Kafka transaction failed")
}

// Run runs the producers until ctx is done; requests still queued then are
// answered ErrUnavailable.
func (c *TxnCommitter) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, c.workers)
	for i := range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.worker(ctx, fmt.Sprintf("%s-%d", c.txnID, i))
		}()
	}
	wg.Wait()
	for {
		select {
		case p := <-c.queue:
			p.settle(fmt.Errorf("%w: gateway shutting down", ErrUnavailable))
		default:
			return errors.Join(errs...)
		}
	}
}

func (c *TxnCommitter) newClient(id string) (*kgo.Client, error) {
	opts := append(append([]kgo.Opt(nil), c.opts...),
		kgo.TransactionalID(id),
		kgo.TransactionTimeout(c.txnTimeout()),
		kgo.RecordDeliveryTimeout(c.timeout),
		kgo.ProducerLinger(0),
		// The idempotency store computes a key's partition with the same
		// (default) partitioner: pin it.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.MaxBufferedRecords(4*c.maxBatch*4),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("gateway producer %s: %w", id, err)
	}
	return cl, nil
}

func (c *TxnCommitter) worker(ctx context.Context, id string) error {
	cl, err := c.newClient(id)
	if err != nil {
		return err
	}
	defer func() { cl.Close() }()
	batch := make([]*pending, 0, c.maxBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case p := <-c.queue:
			batch = append(batch, p)
		}
	drain:
		for len(batch) < c.maxBatch {
			select {
			case p := <-c.queue:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		if ok := c.commitBatch(ctx, cl, batch); !ok {
			// The producer's state is unknown (an end-transaction that
			// timed out): start over. A new producer with the same
			// transactional id aborts whatever the old one left open.
			cl.Close()
			if cl, err = c.newClient(id); err != nil {
				return err
			}
		}
		clear(batch)
	}
}

// commitBatch writes batch in one transaction and answers every request. It
// returns false when the producer must be recreated.
func (c *TxnCommitter) commitBatch(ctx context.Context, cl *kgo.Client, batch []*pending) bool {
	live := batch[:0]
	for _, p := range batch {
		if p.ctx.Err() != nil {
			// Already answered 503; writing it now would be harmless
			// (the retry finds it), but skipping it sheds load.
			p.settle(fmt.Errorf("%w: %w", ErrUnavailable, p.ctx.Err()))
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return true
	}
	begin := time.Now()
	for _, p := range live {
		c.phase(PhaseQueue, begin.Sub(p.queued))
	}
	tctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	live, known, err := c.checkedTxn(tctx, cl, live)
	reset := false
	if err != nil {
		reset = !known || !c.abort(cl)
		msg := err.Error()
		c.lastErr.Store(&msg)
		c.healthy.Store(false)
		c.log.Warn("gateway transaction failed; answering 503", "requests", len(live), "err", err)
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	} else {
		c.healthy.Store(true)
	}
	c.observe(time.Since(begin), err == nil)
	if err == nil && c.onCommit != nil && len(live) > 0 {
		var recs []*kgo.Record
		for _, p := range live {
			recs = append(recs, p.recs...)
		}
		applied := time.Now()
		if cerr := c.onCommit(recs); cerr != nil {
			// Committed in Kafka all the same: the store reads them back.
			c.log.Warn("recording committed idempotency entries", "err", cerr)
		}
		c.phase(PhaseApply, time.Since(applied))
	}
	if !reset {
		for _, p := range live {
			p.settle(err)
		}
		return true
	}
	// The commit's outcome is unknown (its end could not be confirmed nor
	// aborted): answer now, but report it settled only once the broker
	// must have decided it (committed, or aborted by the transaction
	// timeout), so the keys stay held until a retry can see the outcome.
	held := slices.Clone(live) // batch is reused
	for _, p := range held {
		p.done <- err
	}
	time.AfterFunc(c.txnTimeout()+time.Second, func() {
		for _, p := range held {
			if p.settled != nil {
				p.settled(err)
			}
		}
	})
	return false
}

// listed is the outcome of a KeyChecker.ListKeyEnds.
type listed struct {
	ends map[int32]int64
	err  error
}

// checkedTxn writes live in one transaction after checking its requests'
// Idempotency-Keys (see TxnCommitter) and returns the requests it wrote,
// whether the producer's state is known, and the transaction's outcome: on
// an error the caller aborts the transaction, unless known is false (then
// it recreates the producer). Requests it answered itself (key found,
// check failed) are not returned.
func (c *TxnCommitter) checkedTxn(ctx context.Context, cl *kgo.Client, live []*pending) ([]*pending, bool, error) {
	var keys [][]byte
	for _, p := range live {
		if p.key != nil {
			keys = append(keys, p.key)
		}
	}
	if len(keys) == 0 {
		return live, true, c.produceAndCommit(ctx, cl, live)
	}
	// The batch is formed: listed now, the ends hold everything committed
	// before any of its requests was queued.
	lc := make(chan listed, 1)
	go func() {
		var l listed
		if c.keys == nil {
			l.err = errors.New("the committer has no idempotency state")
		} else {
			l.ends, l.err = c.keys.ListKeyEnds(ctx, keys)
		}
		lc <- l
	}()
	if err := c.produce(ctx, cl, live); err != nil {
		return live, true, err
	}
	produced := time.Now()
	kept := c.checkKeys(ctx, live, <-lc)
	c.phase(PhaseKeyCheck, time.Since(produced))
	if len(kept) == len(live) {
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return live, true, fmt.Errorf("commit: %w", err)
		}
		return live, true, nil
	}
	// Records of answered requests are in the transaction: abort it and
	// write the others again (their check stands: nothing they were
	// checked against has changed).
	c.checkAbort()
	if !c.abort(cl) {
		return kept, false, errors.New("aborting a transaction whose Idempotency-Key check found committed keys failed")
	}
	if len(kept) == 0 {
		return kept, true, nil
	}
	return kept, true, c.produceAndCommit(ctx, cl, kept)
}

// checkKeys answers the requests of live whose Idempotency-Key was
// committed before (by any instance) or could not be checked, and returns
// the others. l holds the end offsets listed after the batch formed,
// hence later than each request's arrival: a key not found once the state
// has read up to them (below the batch's own records, which are produced)
// was not committed before its request arrived (StateStore).
func (c *TxnCommitter) checkKeys(ctx context.Context, live []*pending, l listed) []*pending {
	err := l.err
	if err == nil {
		var open []*kgo.Record
		for _, p := range live {
			open = append(open, p.recs...)
		}
		err = c.keys.WaitFor(ctx, l.ends, open)
	}
	out := make([]*pending, 0, len(live))
	for _, p := range live {
		if p.key == nil {
			out = append(out, p)
			continue
		}
		if err != nil {
			p.settle(fmt.Errorf("%w: %w: %w", ErrUnavailable, errStateUnavailable, err))
			continue
		}
		// A request whose caller gave up stays in: it is written anyway
		// (dropping it would cost an abort), and its retry finds it.
		e, found, ferr := c.keys.Find(p.key, p.now)
		switch {
		case ferr != nil:
			p.settle(fmt.Errorf("%w: %w: %w", ErrUnavailable, errStateUnavailable, ferr))
		case found:
			p.settle(&KeyExistsError{Entry: e})
		default:
			out = append(out, p)
		}
	}
	if err != nil {
		c.log.Warn("gateway idempotency check failed; answering 503", "requests", len(live)-len(out), "err", err)
	}
	return out
}

func (c *TxnCommitter) txnTimeout() time.Duration { return max(10*time.Second, 3*c.timeout) }

// produce begins a transaction and writes every record of batch in it,
// acknowledged (acks=all) when it returns nil.
func (c *TxnCommitter) produce(ctx context.Context, cl *kgo.Client, batch []*pending) error {
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	var mu sync.Mutex
	var perr error
	// One promise for the whole batch, not a closure per record.
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			perr = errors.Join(perr, err)
			mu.Unlock()
		}
	}
	for _, p := range batch {
		for _, r := range p.recs {
			cl.Produce(ctx, r, promise)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if perr != nil {
		return fmt.Errorf("produce: %w", perr)
	}
	return nil
}

// produceAndCommit writes batch in one transaction and commits it.
func (c *TxnCommitter) produceAndCommit(ctx context.Context, cl *kgo.Client, batch []*pending) error {
	if err := c.produce(ctx, cl, batch); err != nil {
		return err
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// abort rolls back the open transaction; false means the producer is in an
// unknown state.
func (c *TxnCommitter) abort(cl *kgo.Client) bool {
	actx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := cl.AbortBufferedRecords(actx); err != nil {
		return false
	}
	if err := cl.EndTransaction(actx, kgo.TryAbort); err != nil {
		return false
	}
	return true
}
