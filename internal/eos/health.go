package eos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// health is what /readyz reports for a loop: the session's phase, whether
// the cluster answers and the input topics exist, group membership, the
// assigned partitions and which of them are still restoring state.
type health struct {
	mu         sync.Mutex
	group      string
	topics     []string
	phase      error // nil while a session runs
	probe      error // cluster unreachable, input topic missing
	cl         *kgo.Client
	member     string // our member id in the current or last session
	assigned   map[string]map[int32]bool
	restoring  map[topicPart]progress
	progress   time.Time // last poll that returned records, or session start
	stalled    error     // set by the probe: assigned input waits and nothing moves
	heldLogged time.Time // when input held behind an open transaction was last logged
}

// heldDue reports whether held input is to be logged now (at most once
// per every), and notes that it is.
func (h *health) heldDue(every time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if time.Since(h.heldLogged) < every {
		return false
	}
	h.heldLogged = time.Now()
	return true
}

type topicPart struct {
	topic string
	part  int32
}

type progress struct{ done, total int64 }

func (h *health) init(group string, topics []string) {
	h.group, h.topics = group, topics
	h.phase = errors.New("starting")
	h.probe = errors.New("not yet connected to Kafka")
	h.assigned = map[string]map[int32]bool{}
	h.restoring = map[topicPart]progress{}
}

func (h *health) setPhase(err error) {
	h.mu.Lock()
	h.phase = err
	h.mu.Unlock()
}

func (h *health) setProbe(err error) {
	h.mu.Lock()
	h.probe = err
	h.mu.Unlock()
}

// reset starts a new session: nothing is assigned or joined yet.
func (h *health) reset(cl *kgo.Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cl = cl
	clear(h.assigned)
	clear(h.restoring)
	h.phase = errors.New("session starting")
	h.progress, h.stalled = time.Now(), nil
}

func (h *health) moved() {
	h.mu.Lock()
	h.progress = time.Now()
	h.mu.Unlock()
}

// takeStalled returns and clears the stall the probe found.
func (h *health) takeStalled() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	err := h.stalled
	h.stalled = nil
	return err
}

func (h *health) observeMember(cl *kgo.Client) {
	if m, _ := cl.GroupMetadata(); m != "" {
		h.mu.Lock()
		h.member = m
		h.mu.Unlock()
	}
}

// assign records newly assigned partitions; restoring marks them as
// restoring until the processor's Assigned returns.
func (h *health) assign(m map[string][]int32, restoring bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for t, ps := range m {
		if h.assigned[t] == nil {
			h.assigned[t] = map[int32]bool{}
		}
		for _, p := range ps {
			h.assigned[t][p] = true
			if restoring {
				h.restoring[topicPart{t, p}] = progress{}
			}
		}
	}
}

func (h *health) revoke(m map[string][]int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for t, ps := range m {
		for _, p := range ps {
			delete(h.assigned[t], p)
			delete(h.restoring, topicPart{t, p})
		}
	}
}

func (h *health) setRestoring(t string, p int32, pr progress, done bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := topicPart{t, p}
	if done {
		delete(h.restoring, k)
		return
	}
	if h.assigned[t][p] {
		h.restoring[k] = pr
	}
}

// status returns a one-line description of the loop and nil when it can do
// its job now, or why not.
func (h *health) status() (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.phase != nil {
		return "", h.phase
	}
	if h.probe != nil {
		return "", h.probe
	}
	member, gen := "", int32(-1)
	if h.cl != nil {
		member, gen = h.cl.GroupMetadata()
	}
	if member == "" || gen < 0 {
		return "", fmt.Errorf("not yet joined consumer group %s", h.group)
	}
	if len(h.restoring) > 0 {
		parts := make([]string, 0, len(h.restoring))
		for k, pr := range h.restoring {
			s := fmt.Sprintf("%s[%d]", k.topic, k.part)
			if pr.total > 0 {
				s += fmt.Sprintf(" %d/%d", pr.done, pr.total)
			}
			parts = append(parts, s)
		}
		sort.Strings(parts)
		return "", fmt.Errorf("restoring state of %d partitions: %s", len(parts), strings.Join(parts, ", "))
	}
	var parts []string
	n := 0
	for t, ps := range h.assigned {
		ids := make([]int32, 0, len(ps))
		for p := range ps {
			ids = append(ids, p)
		}
		slices.Sort(ids)
		n += len(ids)
		if len(ids) > 0 {
			parts = append(parts, fmt.Sprintf("%s%v", t, ids))
		}
	}
	sort.Strings(parts)
	if n == 0 {
		return fmt.Sprintf("member of group %s (generation %d) with no partitions: the other members hold them all", h.group, gen), nil
	}
	return fmt.Sprintf("member of group %s (generation %d), %d partitions: %s", h.group, gen, n, strings.Join(parts, " ")), nil
}

// Ready reports nil when the loop can do its job now: a session runs, the
// cluster answers, the input topics exist, the group is joined and no
// assigned partition is still restoring state; otherwise why not. Wire it to
// /readyz.
func (l *Loop) Ready() error {
	_, err := l.h.status()
	return err
}

// Status is Ready with a description of the loop when it is ready: its
// group, generation and partitions, or that it holds none because the other
// members hold them all.
func (l *Loop) Status() (string, error) { return l.h.status() }

// MarkRestoring tells readiness that the state of an assigned partition is
// being restored (done of total units, 0 total if unknown): the loop is not
// ready until MarkRestored. The loop marks every newly assigned partition
// restoring while the processor's Assigned runs; processors that restore in
// the background call these themselves.
func (l *Loop) MarkRestoring(topic string, partition int32, done, total int64) {
	l.h.setRestoring(topic, partition, progress{done, total}, false)
}

// MarkRestored tells readiness a partition's state is restored.
func (l *Loop) MarkRestored(topic string, partition int32) {
	l.h.setRestoring(topic, partition, progress{}, true)
}

type restoreKey struct{}

// ReportRestore reports restore progress of a partition from inside
// Assigner.Assigned (whose ctx carries the loop); outside it does nothing.
func ReportRestore(ctx context.Context, topic string, partition int32, done, total int64) {
	if l, ok := ctx.Value(restoreKey{}).(*Loop); ok {
		l.MarkRestoring(topic, partition, done, total)
	}
}

// probe checks every ProbeInterval that the cluster answers and the input
// topics exist, until ctx is done.
func (l *Loop) probe(ctx context.Context, cl *kgo.Client) {
	adm := kadm.NewClient(cl)
	t := time.NewTicker(l.cfg.probeEvery)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, max(l.cfg.probeEvery, 5*time.Second))
		err := checkTopics(pctx, adm, l.cfg.topics)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			l.h.mu.Lock()
			untaken := l.h.stalled
			l.h.mu.Unlock()
			if untaken != nil {
				// The loop did not pick the stall up within a probe
				// interval: it is blocked inside the client (a poll,
				// produce or End waiting on a group or producer state
				// the broker restart invalidated). Closing the client
				// unblocks it; the loop then starts a new session.
				l.log.Warn("session stuck; closing its client to start a new session", "err", untaken)
				cl.Close()
				return
			}
			l.checkStall(ctx, adm)
		}
		prev := l.h.probeErr()
		l.h.setProbe(err)
		if err != nil && (prev == nil || prev.Error() != err.Error()) {
			l.log.Warn("not ready", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkStall flags the session as stalled when its partitions have
// readable input past the group's committed offsets and no poll returned
// records for the StallAfter option's time. Input held behind an open
// transaction is no stall a new session could cure: it is logged, with
// what to do if the transaction never ends.
func (l *Loop) checkStall(ctx context.Context, adm *kadm.Client) {
	l.h.mu.Lock()
	since := time.Since(l.h.progress)
	parts := map[string][]int32{}
	for t, ps := range l.h.assigned {
		for p := range ps {
			parts[t] = append(parts[t], p)
		}
	}
	l.h.mu.Unlock()
	if since < l.cfg.stallAfter || len(parts) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	flag := func(err error) {
		l.log.Warn("session stalled", "err", err)
		l.h.mu.Lock()
		l.h.stalled = err
		l.h.mu.Unlock()
	}
	b, err := l.backlog(ctx, adm, parts)
	switch {
	case err != nil:
		flag(fmt.Errorf("no records fetched for %s and %w", since.Round(time.Second), err))
	case b.readable > 0:
		flag(fmt.Errorf("no records fetched for %s while %d input records wait on the assigned partitions %v", since.Round(time.Second), b.readable, parts))
	case b.held > 0 && l.h.heldDue(l.cfg.stallAfter):
		l.log.Warn("input held behind an open transaction", "records", b.held, "partitions", b.heldOn, "for", since.Round(time.Second),
			"fix", "a producer's transaction on the input is still open; it ends within that producer's transaction timeout; "+
				"if it never does, find it with kafka-transactions.sh find-hanging and end it")
	}
}

// backlog is the assigned input past the group's committed offsets:
// readable (from the log start, which retention and DeleteRecords move, to
// the last stable offset) and held (between the last stable offset and the
// high watermark: a read_committed consumer cannot pass an open
// transaction).
type backlog struct {
	readable, held int64
	heldOn         map[string][]int32
}

func (l *Loop) backlog(ctx context.Context, adm *kadm.Client, parts map[string][]int32) (backlog, error) {
	starts, err := adm.ListStartOffsets(ctx, l.cfg.topics...)
	if err == nil {
		err = starts.Error()
	}
	stable, err2 := adm.ListCommittedOffsets(ctx, l.cfg.topics...)
	if err2 == nil {
		err2 = stable.Error()
	}
	ends, err3 := adm.ListEndOffsets(ctx, l.cfg.topics...)
	if err3 == nil {
		err3 = ends.Error()
	}
	if err = errors.Join(err, err2, err3); err != nil {
		return backlog{}, fmt.Errorf("the offsets of %v cannot be listed: %w", l.cfg.topics, err)
	}
	committed, err := adm.FetchOffsets(ctx, l.cfg.group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return backlog{}, fmt.Errorf("the committed offsets of group %s cannot be read: %w", l.cfg.group, err)
	}
	b := backlog{heldOn: map[string][]int32{}}
	for t, ps := range parts {
		for _, p := range ps {
			lso, ok := stable.Lookup(t, p)
			hwm, ok2 := ends.Lookup(t, p)
			if !ok || !ok2 || lso.Err != nil || hwm.Err != nil {
				continue
			}
			at := int64(0)
			if c, ok := committed.Lookup(t, p); ok && c.Err == nil {
				at = c.At
			}
			if s, ok := starts.Lookup(t, p); ok && s.Err == nil {
				at = max(at, s.Offset)
			}
			b.readable += max(0, lso.Offset-at)
			if h := hwm.Offset - max(lso.Offset, at); h > 0 {
				b.held += h
				b.heldOn[t] = append(b.heldOn[t], p)
			}
		}
	}
	return b, nil
}

func (h *health) probeErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.probe
}

func checkTopics(ctx context.Context, adm *kadm.Client, topics []string) error {
	td, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("cannot reach Kafka: %w", err)
	}
	var missing []string
	for _, t := range topics {
		d, ok := td[t]
		if !ok || d.Err != nil || len(d.Partitions) == 0 {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("input topic %s does not exist (run `pcistream topology apply`)", strings.Join(missing, ", "))
	}
	return nil
}

// classify turns a session-ending error into what Run does with it: stop
// (ErrFenced, errFatal) or restart from the committed offsets. A fence-like
// error (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH, FENCED_INSTANCE_ID) is a
// fence only when a newer member with this worker's instance id is in the
// group: a broker restarting on its data bumps the epochs of transactions
// it found open, which looks the same on the wire but is no other worker.
func (l *Loop) classify(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return err
	case isFatal(err):
		return fmt.Errorf("%w: %w", errFatal, err)
	case !isFenced(err):
		return err
	}
	if l.cfg.instanceID == "" {
		// Without static membership a newer producer cannot be told from
		// a broker's recovery: fail closed, as before.
		return fmt.Errorf("%w: %w", ErrFenced, err)
	}
	other, derr := l.takenOver(ctx)
	switch {
	case derr != nil:
		l.log.Warn("fenced-looking error and the group cannot be described; restarting the session", "err", err, "describe_err", derr)
		return err
	case other != "":
		return fmt.Errorf("%w: member %s of group %s now has instance id %q: %w", ErrFenced, other, l.cfg.group, l.cfg.instanceID, err)
	default:
		l.log.Warn("epoch bumped but no other worker holds this identity (a broker restart?); restarting the session", "err", err)
		return err
	}
}

// takenOver returns the member id of another live member of the group with
// this loop's instance id, if there is one.
func (l *Loop) takenOver(ctx context.Context) (string, error) {
	l.h.mu.Lock()
	ours := map[string]bool{l.h.member: true}
	if l.h.cl != nil {
		m, _ := l.h.cl.GroupMetadata()
		ours[m] = true
	}
	l.h.mu.Unlock()
	delete(ours, "")
	if len(ours) == 0 {
		return "", nil
	}
	cl, err := kgo.NewClient(l.cfg.clientOpts...)
	if err != nil {
		return "", err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	var members []struct {
		id   string
		inst *string
	}
	if l.cfg.serverAssign {
		gs, err := adm.DescribeConsumerGroups(ctx, l.cfg.group)
		if err != nil {
			return "", err
		}
		for _, g := range gs {
			for _, m := range g.Members {
				members = append(members, struct {
					id   string
					inst *string
				}{m.MemberID, m.InstanceID})
			}
		}
	} else {
		gs, err := adm.DescribeGroups(ctx, l.cfg.group)
		if err != nil {
			return "", err
		}
		for _, g := range gs {
			if g.Err != nil {
				return "", g.Err
			}
			for _, m := range g.Members {
				members = append(members, struct {
					id   string
					inst *string
				}{m.MemberID, m.InstanceID})
			}
		}
	}
	for _, m := range members {
		if m.inst != nil && *m.inst == l.cfg.instanceID && !ours[m.id] {
			return m.id, nil
		}
	}
	return "", nil
}
