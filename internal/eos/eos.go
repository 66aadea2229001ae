// Package eos is pcistream's shared exactly-once consume-transform-produce
// loop, built on franz-go's GroupTransactSession: every record a processor
// emits is produced in the same Kafka transaction that commits the input
// offsets, and consumers read with read_committed.
//
// The loop is shaped like franz-go's examples/transactions/eos: poll, begin,
// transform and produce, end. What it adds is what a production worker needs
// around that: recovery when End fails (the outcome of a failed End is
// unknown, so the loop rebuilds its client and re-reads committed offsets
// rather than guessing), fencing detection (a second worker with the same
// transactional id stops the older one), a bound on retries of a failing
// batch (fail closed: the data stays in Kafka), state hooks for processors
// that keep state, graceful shutdown, metrics and readiness.
package eos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/optcheck"
)

// Processor transforms one fetched record into zero or more output records,
// emitted through out. Returning an error aborts the whole transaction; the
// batch is retried from the last committed offsets, and after MaxRetries
// consecutive failures the loop stops (fail closed). Bad input must not
// return an error: emit a dead-letter record instead, so the pipeline keeps
// going.
type Processor interface {
	Process(ctx context.Context, rec *kgo.Record, out *Out) error
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, rec *kgo.Record, out *Out) error

// Process implements Processor.
func (f ProcessorFunc) Process(ctx context.Context, rec *kgo.Record, out *Out) error {
	return f(ctx, rec, out)
}

// Assigner is implemented by processors that build state per partition. The
// loop calls Assigned from its own goroutine, before processing any record
// of the newly assigned partitions.
type Assigner interface {
	Assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) error
}

// AssignListener is implemented by processors that must act the moment
// partitions are assigned or revoked, not at the next batch: start restoring
// state at once (pausing the partitions on cl until it is ready) and cancel
// the restores of partitions that went away. It is called from the client's
// group callbacks and must not block for long.
type AssignListener interface {
	PartitionsAssigned(cl *kgo.Client, assigned map[string][]int32)
	PartitionsRevoked(revoked map[string][]int32)
}

// Revoker is implemented by processors that drop state when partitions go.
// It is called from the loop's goroutine before the next batch.
type Revoker interface {
	Revoked(ctx context.Context, revoked map[string][]int32)
}

// Ender is implemented by processors that keep state changed by records:
// Ended(true) after a transaction committed (apply pending changes),
// Ended(false) after it aborted or its outcome is unknown (drop them; the
// records will be processed again).
type Ender interface {
	Ended(committed bool)
}

// BatchStarter is implemented by processors that must prepare for a
// poll's records before the first is processed and may wait doing so (e.g.
// bring state up to date): StartBatch runs before anything of the batch's
// transaction reaches a broker, so its wait does not run down the
// transaction timeout. An error aborts the batch like a processing error.
type BatchStarter interface {
	StartBatch(ctx context.Context, fetches kgo.Fetches) error
}

// BatchEnder is implemented by processors that emit records per batch (e.g.
// one audit summary per transaction) rather than per record. EndBatch runs
// after the last record of a batch and before the transaction ends.
type BatchEnder interface {
	EndBatch(ctx context.Context, out *Out) error
}

// Out collects the records a Processor emits for the current transaction.
type Out struct {
	recs []*kgo.Record
}

// Emit adds r to the current transaction. r.Topic must be set.
func (o *Out) Emit(r *kgo.Record) { o.recs = append(o.recs, r) }

// Len is the number of records emitted so far in this transaction.
func (o *Out) Len() int { return len(o.recs) }

// Records returns the records emitted so far (for replays and tests that
// drive a Processor without a loop).
func (o *Out) Records() []*kgo.Record { return o.recs }

// Reset forgets the emitted records.
func (o *Out) Reset() { o.recs = o.recs[:0] }

// ErrFenced is returned by Run when another worker with the same
// transactional id took over: this one must stop, not retry.
var ErrFenced = errors.New("fenced by another worker with the same transactional id")

type cfg struct {
	name           string
	group          string
	topics         []string
	txnID          string
	clientOpts     []kgo.Opt
	outputs        []string
	log            *slog.Logger
	reg            prometheus.Registerer
	maxPoll        int
	txnTimeout     time.Duration
	sessionTimeout time.Duration
	instanceID     string
	instanceSet    bool
	serverAssign   bool
	maxRetries     int
	backoff        time.Duration
	probeEvery     time.Duration
	stallAfter     time.Duration
}

// Opt configures a Loop.
type Opt func(*cfg)

// Name sets the processor name: the metrics label, and the default consumer
// group and transactional id prefix (default "processor").
func Name(n string) Opt { return func(c *cfg) { c.name = n } }

// Group sets the consumer group (default "pcistream-<name>").
func Group(g string) Opt { return func(c *cfg) { c.group = g } }

// Topics sets the input topics.
func Topics(t ...string) Opt { return func(c *cfg) { c.topics = t } }

// TransactionalID sets the transactional id. It must be stable across the
// worker's restarts (so a restarted worker fences its zombie) and unique
// among live workers (default "pcistream-<name>-<hostname>").
func TransactionalID(id string) Opt { return func(c *cfg) { c.txnID = id } }

// ClientOpts adds kgo options: seed brokers, TLS, SASL (see kafkax.Opts).
func ClientOpts(o ...kgo.Opt) Opt { return func(c *cfg) { c.clientOpts = append(c.clientOpts, o...) } }

// OutputTopics names the topics the processor writes. After a broker
// restart Apache Kafka can leave a transaction of the worker open on the
// group's offsets although its coordinator finished it (DIFFERENCES.md
// section 8 of internal/devstack/kafkabroker); the loop then reads that
// transaction's outcome back from these topics' markers and completes the
// offsets the same way. Topics the loop has produced to since the process
// started count too, so this matters for the first session after a restart.
// Empty names are ignored (an output the deployment left unset).
func OutputTopics(t ...string) Opt {
	return func(c *cfg) {
		for _, n := range t {
			if n != "" {
				c.outputs = append(c.outputs, n)
			}
		}
	}
}

// Logger sets the logger (default slog.Default()).
func Logger(l *slog.Logger) Opt { return func(c *cfg) { c.log = l } }

// Registerer sets where metrics are registered (default none).
func Registerer(r prometheus.Registerer) Opt { return func(c *cfg) { c.reg = r } }

// MaxPollRecords bounds the records in one transaction (default 1000).
func MaxPollRecords(n int) Opt { return func(c *cfg) { c.maxPoll = n } }

// TxnTimeout sets the transaction timeout (default 10s, Kafka Streams'
// exactly-once default): a worker stalled longer than this has its
// transaction aborted by the coordinator. It also bounds recovery after a
// crash: on Apache Kafka a restarted worker's offset fetch (require_stable)
// waits for the dead worker's open transaction until the coordinator
// aborts it, which is this timeout plus up to
// transaction.abort.timed.out.transaction.cleanup.interval.ms (10 s).
func TxnTimeout(d time.Duration) Opt { return func(c *cfg) { c.txnTimeout = d } }

// SessionTimeout sets the group session timeout (default 45s, Kafka's):
// how long a worker that died without leaving keeps its partitions. With
// static membership a restarted worker takes its partitions back at once,
// so this only bounds how long a worker that stays dead stalls them.
func SessionTimeout(d time.Duration) Opt { return func(c *cfg) { c.sessionTimeout = d } }

// InstanceID sets the static group membership id (KIP-345). The default is
// the transactional id: both must be stable across restarts and unique among
// live workers, so one derivation (e.g. the StatefulSet pod name) serves
// both. A restarted worker with the same instance id gets its partitions
// back without a rebalance, and a second live worker with the same id
// fences the first. An empty id turns static membership off.
func InstanceID(id string) Opt { return func(c *cfg) { c.instanceID, c.instanceSet = id, true } }

// ServerAssignor opts into KIP-848 consumer groups (the broker assigns
// partitions; no group-wide barrier on rebalance). The default is the
// classic protocol with the cooperative-sticky balancer, under which
// partitions that do not move keep flowing during a rebalance.
func ServerAssignor(on bool) Opt { return func(c *cfg) { c.serverAssign = on } }

// MaxRetries bounds consecutive failed attempts at a batch before Run
// returns (default 5).
func MaxRetries(n int) Opt { return func(c *cfg) { c.maxRetries = n } }

// Backoff sets the first retry delay, doubled per failure up to
// maxBackoff (default 250ms).
func Backoff(d time.Duration) Opt { return func(c *cfg) { c.backoff = d } }

// ProbeInterval sets how often a running session checks that the cluster
// answers and the input topics exist, for readiness (default 5s).
func ProbeInterval(d time.Duration) Opt { return func(c *cfg) { c.probeEvery = d } }

// StallAfter sets how long assigned partitions with readable input past
// the committed offsets may go without a fetched record before the session
// is restarted (default 20s). A client can wait silently (a join answered
// UNKNOWN_MEMBER_ID after a broker restart, committed offsets that stay
// unstable); a new session is the cure, and the warning says why.
func StallAfter(d time.Duration) Opt { return func(c *cfg) { c.stallAfter = d } }

// validate checks the options' values, naming the option at fault. The
// bounds are Kafka's: a broker refuses a transaction timeout above
// transaction.max.timeout.ms (15 minutes by default) and a session timeout
// outside group.min/max.session.timeout.ms (6 seconds to 30 minutes).
func (c *cfg) validate() error {
	errs := []error{
		optcheck.NotEmpty("Name", c.name),
		optcheck.NotEmpty("Group", c.group),
		optcheck.NotEmpty("TransactionalID", c.txnID),
		optcheck.AtLeast("MaxPollRecords", c.maxPoll, 1),
		optcheck.Between("TxnTimeout", c.txnTimeout, time.Second, 15*time.Minute),
		optcheck.AtLeast("MaxRetries", c.maxRetries, 0),
		optcheck.Between("Backoff", c.backoff, time.Millisecond, 30*time.Second),
		optcheck.AtLeast("StallAfter", c.stallAfter, time.Second),
	}
	if c.sessionTimeout != 0 {
		errs = append(errs, optcheck.Between("SessionTimeout", c.sessionTimeout, 6*time.Second, 30*time.Minute))
	}
	for _, t := range c.topics {
		errs = append(errs, optcheck.NotEmpty("Topics", t))
	}
	return optcheck.Check("eos "+c.name, errs...)
}

// Loop runs one Processor exactly once over its input topics.
type Loop struct {
	p   Processor
	cfg cfg
	m   *metrics
	log *slog.Logger
	h   health

	mu       sync.Mutex
	assigned map[string][]int32  // pending, for Assigner
	revoked  map[string][]int32  // pending, for Revoker
	produced map[string]struct{} // topics written, for settleHanging
	reported hangingTxn          // the last one reportUndetermined logged
}

// maxBackoff caps the delay between session restarts: a broker that comes
// back should see its workers within seconds, not half a minute.
const maxBackoff = 5 * time.Second

// New returns a loop for p. It does not connect until Run.
func New(p Processor, opts ...Opt) (*Loop, error) {
	host, _ := os.Hostname()
	c := cfg{
		name:       "processor",
		maxPoll:    1000,
		txnTimeout: 10 * time.Second, // see TxnTimeout: it bounds crash recovery on Apache Kafka
		maxRetries: 5,
		backoff:    250 * time.Millisecond,
		probeEvery: 5 * time.Second,
		stallAfter: 20 * time.Second,
	}
	for _, o := range opts {
		o(&c)
	}
	if c.group == "" {
		c.group = "pcistream-" + c.name
	}
	if c.txnID == "" {
		c.txnID = "pcistream-" + c.name + "-" + host
	}
	if !c.instanceSet {
		c.instanceID = c.txnID
	}
	if len(c.topics) == 0 {
		return nil, fmt.Errorf("eos: %s: no input topics", c.name)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	l := &Loop{p: p, cfg: c, m: newMetrics(c.reg, c.name), log: c.log.With("processor", c.name)}
	l.h.init(c.group, c.topics)
	return l, nil
}

// Run processes until ctx is done, then finishes or aborts the open
// transaction. It returns nil on a clean shutdown, ErrFenced when a newer
// worker with the same identity took over, and an error when a batch kept
// failing (the data stays in Kafka for the next start) or on an
// authorization failure. Everything else (a broker restart, a moved
// coordinator, lost connections, a transaction whose outcome is unknown,
// an epoch bumped by a broker's crash recovery) restarts the session from
// the committed offsets, with backoff, for as long as it takes.
func (l *Loop) Run(ctx context.Context) error {
	failures, restarts := 0, 0
	for {
		err := l.session(ctx, &failures, &restarts)
		if ctx.Err() != nil {
			l.h.setPhase(errors.New("stopped"))
			l.leave()
			return nil
		}
		if err == nil {
			continue
		}
		restarts++
		if errors.Is(err, ErrFenced) || errors.Is(err, errFatal) || failures > l.cfg.maxRetries {
			l.h.setPhase(err)
			l.log.Error("stopping: failing closed, the input stays in Kafka", "err", err)
			return fmt.Errorf("eos %s: %w", l.cfg.name, err)
		}
		l.h.setPhase(fmt.Errorf("session restarting after: %w", err))
		d := backoff(l.cfg.backoff, restarts)
		l.log.Warn("restarting session from committed offsets", "err", err, "restart", restarts, "failed_batches", failures, "in", d)
		select {
		case <-ctx.Done():
			l.h.setPhase(errors.New("stopped"))
			return nil
		case <-time.After(d):
		}
	}
}

// leave takes a static member out of the group on a graceful stop, so its
// partitions move to the other members at once instead of idling for the
// session timeout (a static member's client does not leave by itself: that
// is what lets a crashed worker's restart take its partitions back without
// a rebalance). A rolling restart thus costs two cooperative rebalances of
// this worker's partitions, and a scale-down none of the session timeout.
func (l *Loop) leave() {
	if l.cfg.instanceID == "" || l.cfg.serverAssign {
		return
	}
	cl, err := kgo.NewClient(l.cfg.clientOpts...)
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).LeaveGroup(ctx, kadm.LeaveGroup(l.cfg.group).InstanceIDs(l.cfg.instanceID).Reason("pcistream worker stopping"))
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		l.log.Warn("could not leave the group on shutdown; its partitions wait for the session timeout", "err", err)
		return
	}
	l.log.Info("left the group", "group", l.cfg.group, "instance_id", l.cfg.instanceID)
}

// retryMetadataMinAge bounds how long a produce retry waits. On Apache
// Kafka with transaction.version 2 (the default of 4.x clusters, KIP-890),
// the first produce of a transaction that follows the previous commit
// closely is answered CONCURRENT_TRANSACTIONS until the commit markers are
// written (a few ms); franz-go retries such batches after a metadata
// refresh, and refreshes are at most one per MetadataMinAge (5 s by
// default). Measured on a 4.4.0 broker: a transaction stalled 4.5 s in
// Flush. A refresh is a small request, and only retries trigger one.
const retryMetadataMinAge = 10 * time.Millisecond

// fetchMaxWait is how long the broker may hold an empty fetch: the Java
// consumer's default (franz-go's is 5 s). A fetch in flight does not cover
// partitions resumed after it was sent (a state partition whose restore
// finished), so they wait for it to return: measured on a 4.4.0 broker, the
// first repartitioned record after a restore waited 5.04 s in the
// tokenizer's loop. An idle loop now sends two small fetches a second.
const fetchMaxWait = 500 * time.Millisecond

// errFatal marks errors no restart can fix (authorization).
var errFatal = errors.New("fatal")

func (l *Loop) clientOpts() []kgo.Opt {
	// The default partitioner comes first so that ClientOpts can replace it
	// (the tokenizer writes its co-partitioned state topic by partition).
	opts := []kgo.Opt{kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), kgo.MetadataMinAge(retryMetadataMinAge),
		kgo.FetchMaxWait(fetchMaxWait)}
	opts = append(opts, l.cfg.clientOpts...)
	opts = append(opts,
		kgo.ConsumerGroup(l.cfg.group),
		kgo.ConsumeTopics(l.cfg.topics...),
		kgo.TransactionalID(l.cfg.txnID),
		kgo.TransactionTimeout(l.cfg.txnTimeout),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
			if al, ok := l.p.(AssignListener); ok {
				al.PartitionsAssigned(cl, m)
			}
			l.mu.Lock()
			l.assigned = merge(l.assigned, m)
			l.mu.Unlock()
			_, restores := l.p.(Assigner)
			l.h.assign(m, restores)
			l.log.Info("partitions assigned", "partitions", m)
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if al, ok := l.p.(AssignListener); ok {
				al.PartitionsRevoked(m)
			}
			l.mu.Lock()
			l.revoked = merge(l.revoked, m)
			l.mu.Unlock()
			l.h.revoke(m)
			l.log.Info("partitions revoked", "partitions", m)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if al, ok := l.p.(AssignListener); ok {
				al.PartitionsRevoked(m)
			}
			l.mu.Lock()
			l.revoked = merge(l.revoked, m)
			l.mu.Unlock()
			l.h.revoke(m)
			l.log.Warn("partitions lost", "partitions", m)
		}),
	)
	if l.cfg.instanceID != "" {
		opts = append(opts, kgo.InstanceID(l.cfg.instanceID))
	}
	if l.cfg.serverAssign {
		// KIP-848 needs the sticky (or range) balancer first; on a broker
		// without KIP-848 the client falls back to it, classic and eager.
		opts = append(opts, kgo.ServerSideBalancer(), kgo.Balancers(kgo.StickyBalancer()))
	} else {
		opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()))
	}
	if l.cfg.sessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(l.cfg.sessionTimeout))
		if hb := l.cfg.sessionTimeout / 3; hb < 3*time.Second {
			opts = append(opts, kgo.HeartbeatInterval(hb))
		}
	}
	return opts
}

// session runs one GroupTransactSession until ctx is done or the outcome of
// a transaction is unknown, in which case the caller starts a new session:
// a new client joins the group and fetches the committed offsets, which is
// the only truthful answer to "did that commit happen?".
func (l *Loop) session(ctx context.Context, failures, restarts *int) error {
	sess, err := kgo.NewGroupTransactSession(l.clientOpts()...)
	if err != nil {
		return fmt.Errorf("%w: new transactional session: %w", errFatal, err)
	}
	defer sess.Close()
	cl := sess.Client()
	// Drop state from any earlier session: a new session starts from the
	// committed offsets, and Assigned will rebuild.
	l.mu.Lock()
	l.assigned, l.revoked = nil, nil
	l.mu.Unlock()
	l.h.reset(cl)
	if r, ok := l.p.(Ender); ok {
		r.Ended(false)
	}
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	go l.probe(probeCtx, cl)
	// Initialising the producer id first aborts a transaction a killed
	// predecessor left open, so the committed offsets are stable at once
	// rather than after the transaction timeout.
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	_, _, err = cl.ProducerID(pctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return l.classify(ctx, fmt.Errorf("initialise producer id %q: %w", l.cfg.txnID, err))
	}
	if err := l.settleHanging(ctx, cl); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	l.h.setPhase(nil)
	l.log.Info("session started", "group", l.cfg.group, "transactional_id", l.cfg.txnID,
		"instance_id", l.cfg.instanceID, "topics", l.cfg.topics)

	for {
		// A bounded poll, so that assignments are handed over (and their
		// state restored) while the input is idle too.
		pollCtx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := sess.PollRecords(pollCtx, l.cfg.maxPoll)
		cancel()
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		l.h.observeMember(cl)
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			l.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			if isFatal(err) || isFenced(err) {
				fetchErr = err
			}
		})
		if fetchErr != nil {
			return l.classify(ctx, fmt.Errorf("fetch: %w", fetchErr))
		}
		if err := l.h.takeStalled(); err != nil {
			return fmt.Errorf("session stalled, restarting it: %w", err)
		}
		if fetches.NumRecords() > 0 {
			l.h.moved()
		}
		if err := l.syncAssignments(ctx, cl); err != nil {
			return err
		}
		if fetches.NumRecords() == 0 {
			continue
		}
		l.observeLag(fetches)

		committed, batchErr, err := l.transact(ctx, sess, fetches)
		if e, ok := l.p.(Ender); ok {
			e.Ended(committed)
		}
		switch {
		case err != nil:
			l.m.aborts.Inc()
			return l.classify(ctx, err)
		case committed:
			*failures, *restarts = 0, 0
			l.m.commits.Inc()
		default:
			// Aborted cleanly (a rebalance, or a processing or
			// produce error): the session rewound to the committed
			// offsets and the records come again.
			l.m.aborts.Inc()
		}
		if batchErr != nil {
			*failures++
			if *failures > l.cfg.maxRetries {
				return fmt.Errorf("batch failed %d times in a row, last: %w", *failures, batchErr)
			}
			l.log.Warn("batch aborted; retrying from committed offsets", "err", batchErr, "attempt", *failures)
			l.h.setPhase(fmt.Errorf("batch failing: %w", batchErr))
			time.Sleep(backoff(l.cfg.backoff, *failures))
		} else {
			l.h.setPhase(nil)
		}
	}
}

// transact processes one poll in one transaction. It returns whether the
// transaction committed and, when it was aborted because of the batch (a
// processing or produce error), why; a non-nil err means the outcome is
// unknown or the session is unusable.
func (l *Loop) transact(ctx context.Context, sess *kgo.GroupTransactSession, fetches kgo.Fetches) (committed bool, batchErr, err error) {
	if err := sess.Begin(); err != nil {
		return false, nil, fmt.Errorf("begin transaction: %w", err)
	}
	var (
		out      Out
		procErr  error
		prodMu   sync.Mutex
		prodErr  error
		produced = map[string]int{}
		in       int
	)
	promise := func(r *kgo.Record, err error) {
		prodMu.Lock()
		defer prodMu.Unlock()
		if err != nil {
			if prodErr == nil {
				prodErr = fmt.Errorf("produce to %s: %w", r.Topic, err)
			}
			return
		}
		produced[r.Topic]++
	}
	flush := func() {
		for _, r := range out.recs {
			sess.Produce(ctx, r, promise)
		}
		out.recs = out.recs[:0]
	}
	if bs, ok := l.p.(BatchStarter); ok {
		// Begin is client-side only: nothing is open on the brokers
		// (no transaction timeout runs) until the first produce.
		if procErr = bs.StartBatch(ctx, fetches); procErr != nil {
			procErr = fmt.Errorf("start batch: %w", procErr)
		}
	}
	iter := fetches.RecordIter()
	for procErr == nil && !iter.Done() {
		rec := iter.Next()
		in++
		if procErr = l.p.Process(ctx, rec, &out); procErr != nil {
			procErr = fmt.Errorf("process %s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, procErr)
			break
		}
		flush()
	}
	if be, ok := l.p.(BatchEnder); ok && procErr == nil {
		if procErr = be.EndBatch(ctx, &out); procErr == nil {
			flush()
		}
	}
	// Flush inside End waits for every produce; promise errors are known
	// after it, but End must be told whether to commit before: so flush
	// first, then decide.
	// Bounded: after a broker restart a produce can wait on a producer
	// epoch that will never be accepted again; abort and start over.
	if procErr == nil {
		fctx, cancel := context.WithTimeout(ctx, l.endTimeout())
		if err := sess.Client().Flush(fctx); err != nil {
			procErr = fmt.Errorf("flush: %w", err)
		}
		cancel()
	}
	prodMu.Lock()
	pErr := prodErr
	prodMu.Unlock()
	try := kgo.TryCommit
	if procErr != nil || pErr != nil || ctx.Err() != nil {
		try = kgo.TryAbort
		l.log.Warn("aborting transaction", "process_err", procErr, "produce_err", pErr)
	}
	// End uses its own deadline: on shutdown ctx is already done, and the
	// open transaction must still be finished or aborted.
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.endTimeout())
	defer cancel()
	committed, err = sess.End(endCtx, try)
	if err != nil {
		return false, nil, fmt.Errorf("end transaction (outcome unknown, re-reading committed offsets): %w", errors.Join(err, pErr))
	}
	l.noteProduced(produced)
	if committed {
		l.m.in.Add(float64(in))
		for t, n := range produced {
			l.m.out.WithLabelValues(l.cfg.name, t).Add(float64(n))
		}
	}
	if procErr != nil {
		return false, procErr, nil
	}
	if pErr != nil {
		if isFenced(pErr) || isFatal(pErr) {
			return false, nil, pErr
		}
		return false, pErr, nil
	}
	return committed, nil, nil
}

// endTimeout bounds flushing and ending one transaction: half the
// transaction timeout, at most 20s. Past it the outcome is treated as
// unknown and the session restarts from the committed offsets.
func (l *Loop) endTimeout() time.Duration {
	return min(l.cfg.txnTimeout/2, 20*time.Second)
}

// syncAssignments hands pending revocations and assignments to the
// processor, in the loop's goroutine, before the next batch is processed.
// The assigned partitions count as restoring (not ready) until Assigned
// returns.
func (l *Loop) syncAssignments(ctx context.Context, cl *kgo.Client) error {
	l.mu.Lock()
	assigned, revoked := l.assigned, l.revoked
	l.assigned, l.revoked = nil, nil
	l.mu.Unlock()
	if len(revoked) > 0 {
		if r, ok := l.p.(Revoker); ok {
			r.Revoked(ctx, revoked)
		}
	}
	if len(assigned) > 0 {
		if a, ok := l.p.(Assigner); ok {
			start := time.Now()
			if err := a.Assigned(context.WithValue(ctx, restoreKey{}, l), cl, assigned); err != nil {
				// Leave them pending: the next session assigns again.
				return fmt.Errorf("rebuild state for %v: %w", assigned, err)
			}
			l.log.Info("state restored", "partitions", assigned, "took", time.Since(start).Round(time.Millisecond))
		}
		for t, ps := range assigned {
			for _, p := range ps {
				l.MarkRestored(t, p)
			}
		}
	}
	return nil
}

func (l *Loop) observeLag(fs kgo.Fetches) {
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		last := p.Records[len(p.Records)-1].Offset
		lag := p.HighWatermark - last - 1
		if lag < 0 {
			lag = 0
		}
		l.m.lag.WithLabelValues(l.cfg.name, p.Topic, fmt.Sprint(p.Partition)).Set(float64(lag))
	})
}

func merge(dst, src map[string][]int32) map[string][]int32 {
	if dst == nil {
		dst = map[string][]int32{}
	}
	for t, ps := range src {
		dst[t] = append(dst[t], ps...)
	}
	return dst
}

// isFenced reports errors that say another producer or member now holds
// this worker's identity, or that a broker's crash recovery bumped its
// epoch: the two look alike on the wire, and classify tells them apart.
func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.FencedInstanceID)
}

// isFatal reports errors no session restart can fix.
func isFatal(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.GroupAuthorizationFailed) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed) || errors.Is(err, kerr.SaslAuthenticationFailed)
}

func backoff(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}
