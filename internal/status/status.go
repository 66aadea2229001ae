// Package status gathers the pipeline's state in one place for operators:
// per processor its consumer group (state, members, lag per partition, how
// long ago it last made progress) and the readiness its members report;
// dead letters by reason; the audit trail's newest signed checkpoint.
//
// Everything is read, nothing is changed: status joins no group and
// commits nothing, so it is safe to run against production at any time.
package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/schemas"
)

// NoGroup is the state of a processor whose group does not exist: no worker
// of it has ever run against this cluster, or its group expired.
const NoGroup = "NoGroup (never started)"

// Processor names one processor's consumer group and dead-letter topic.
type Processor struct {
	Name  string
	Group string
	DLQ   string // empty: the processor has none
	// Members are base URLs of the members' metrics servers
	// (http://host:port); their /readyz is reported when given.
	Members []string
}

// Sources is what Collect reads from.
type Sources struct {
	// ClientOpts connect to Kafka (kafkax.Opts).
	ClientOpts []kgo.Opt
	// Serde decodes dead letters.
	Serde *schemas.Serde
	// Audit, when set, is the audit trail whose newest checkpoint is shown.
	Audit chain.Store
	// DLQWindow bounds how far back dead letters are counted (0: all).
	DLQWindow time.Duration
	// HTTP is the client for members' /readyz (default: 3 s timeout).
	HTTP *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// JobGroupPrefix names the consumer groups of replay and redrive jobs
	// (default DefaultJobGroupPrefix): they are listed as jobs, apart from
	// the processors, never mixed into a processor's group view.
	JobGroupPrefix string
}

// DefaultJobGroupPrefix is the prefix of replay and redrive jobs' consumer
// groups: pcistream-replay-<processor>-<job>.
const DefaultJobGroupPrefix = "pcistream-replay-"

// Report is the pipeline's state at one moment.
type Report struct {
	Time       time.Time         `json:"time"`
	Processors []ProcessorStatus `json:"processors"`
	Audit      *AuditStatus      `json:"audit,omitempty"`
	// Jobs are the replay and redrive jobs that have a consumer group.
	Jobs []JobStatus `json:"jobs,omitempty"`
	// Rearchives are the auditor's re-archive jobs (no consumer group: a
	// trail of their own in the audit bucket, under chain.RearchiveRoot).
	Rearchives []RearchiveStatus `json:"rearchives,omitempty"`
	// Errors lists what could not be read; the rest of the report stands.
	Errors []string `json:"errors,omitempty"`
}

// ProcessorStatus is one processor's group, lag, readiness and dead letters.
type ProcessorStatus struct {
	Name    string         `json:"name"`
	Group   string         `json:"group"`
	State   string         `json:"state"` // Stable, PreparingRebalance, Empty, Dead, ...
	Members []Member       `json:"members"`
	Lag     []PartitionLag `json:"lag"`
	// TotalLag is the sum of the partitions' lag (records, counting
	// transaction markers).
	TotalLag int64 `json:"total_lag"`
	// LastProgress is the time of the newest input record the group has
	// committed past: how long ago the last transaction moved it on.
	LastProgress *time.Time    `json:"last_progress,omitempty"`
	Ready        []MemberReady `json:"ready,omitempty"`
	DLQ          *DLQCounts    `json:"dlq,omitempty"`
}

// JobStatus is one replay or redrive job: its own consumer group, where its
// committed transactions got to, and how far that is from the log end.
type JobStatus struct {
	Group     string `json:"group"`
	Processor string `json:"processor"`
	Job       string `json:"job"`
	// State is the group's: Stable while a run is going, Empty between
	// runs and once finished.
	State   string         `json:"state"`
	Members int            `json:"members"`
	Lag     []PartitionLag `json:"progress"`
	// ToLogEnd sums the partitions' distance from committed to log end:
	// 0 for a job that ran to the end (a job with --to-offset/--to-time
	// finishes earlier and keeps a distance).
	ToLogEnd     int64      `json:"to_log_end"`
	LastProgress *time.Time `json:"last_progress,omitempty"`
}

// Member is one member of a group.
type Member struct {
	ID         string   `json:"id"`
	InstanceID string   `json:"instance_id,omitempty"`
	ClientID   string   `json:"client_id"`
	Host       string   `json:"host"`
	Partitions []string `json:"partitions"` // topic/partition
}

// PartitionLag is one input partition's committed offset and end.
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"` // -1: nothing committed yet
	End       int64  `json:"end"`
	Lag       int64  `json:"lag"`
	Member    string `json:"member,omitempty"`
}

// MemberReady is what one member's /readyz answered.
type MemberReady struct {
	URL   string `json:"url"`
	Ready bool   `json:"ready"`
	// Detail is the body (masked) or the error reaching it.
	Detail string `json:"detail,omitempty"`
}

// DLQCounts counts dead letters by reason code.
type DLQCounts struct {
	Topic    string           `json:"topic"`
	Since    *time.Time       `json:"since,omitempty"`
	Total    int64            `json:"total"`
	ByReason map[string]int64 `json:"by_reason"`
}

// AuditStatus is the audit trail's newest signed checkpoint.
type AuditStatus struct {
	Checkpoint *chain.Checkpoint `json:"checkpoint,omitempty"`
	Age        string            `json:"age,omitempty"`
}

// Collect reads the state of every processor in ps. A part that cannot be
// read is listed in Report.Errors; Collect fails only when Kafka cannot be
// reached at all.
func Collect(ctx context.Context, src Sources, ps []Processor) (*Report, error) {
	if src.Now == nil {
		src.Now = time.Now
	}
	if src.HTTP == nil {
		src.HTTP = &http.Client{Timeout: 3 * time.Second}
	}
	cl, err := kgo.NewClient(src.ClientOpts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	rep := &Report{Time: src.Now().UTC()}
	groups := make([]string, len(ps))
	for i, p := range ps {
		groups[i] = p.Group
	}
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return nil, fmt.Errorf("describing consumer groups (is Kafka reachable at --brokers?): %w", err)
	}
	for _, p := range ps {
		st := ProcessorStatus{Name: p.Name, Group: p.Group}
		if l, ok := lags[p.Group]; ok && errors.Is(l.DescribeErr, kerr.GroupIDNotFound) {
			st.State = NoGroup
		} else if ok {
			if err := l.Error(); err != nil {
				rep.Errors = append(rep.Errors, fmt.Sprintf("%s: group %s: %v", p.Name, p.Group, err))
			}
			fillGroup(&st, l)
			if t, err := lastProgress(ctx, src.ClientOpts, st.Lag); err != nil {
				rep.Errors = append(rep.Errors, fmt.Sprintf("%s: last progress: %v", p.Name, err))
			} else {
				st.LastProgress = t
			}
		}
		for _, u := range p.Members {
			st.Ready = append(st.Ready, readiness(ctx, src.HTTP, u))
		}
		if p.DLQ != "" {
			c, err := countDLQ(ctx, src, adm, p.DLQ)
			if err != nil {
				rep.Errors = append(rep.Errors, fmt.Sprintf("%s: dead letters in %s: %v", p.Name, p.DLQ, err))
			}
			st.DLQ = c
		}
		rep.Processors = append(rep.Processors, st)
	}
	jobs, err := collectJobs(ctx, src, adm)
	if err != nil {
		rep.Errors = append(rep.Errors, fmt.Sprintf("replay jobs: %v", err))
	}
	rep.Jobs = jobs
	if src.Audit != nil {
		a, err := auditStatus(ctx, src.Audit, rep.Time)
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("audit trail: %v", err))
		}
		rep.Audit = a
		rs, err := collectRearchives(ctx, src.Audit)
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("re-archive jobs: %v", err))
		}
		rep.Rearchives = rs
	}
	return rep, nil
}

// RearchiveStatus is one re-archive job of 'pcistream replay auditor'.
type RearchiveStatus struct {
	// Prefix is the job's trail in the audit bucket (replays/<job>/).
	Prefix string `json:"prefix"`
	// Batches is how many batches the job has chained so far.
	Batches int `json:"batches"`
	// Checkpoint is the signed checkpoint a job writes once it finished;
	// nil while it runs or after an interruption.
	Checkpoint *chain.Checkpoint `json:"checkpoint,omitempty"`
}

// errStop ends a listing early.
var errStop = errors.New("stop listing")

// collectRearchives lists the jobs under chain.RearchiveRoot, one listing
// per job: after a job's first key it skips to the next job's.
func collectRearchives(ctx context.Context, s chain.Store) ([]RearchiveStatus, error) {
	var out []RearchiveStatus
	for after := ""; ; {
		job := ""
		err := s.List(ctx, chain.RearchiveRoot, after, func(key string) error {
			if name, _, ok := strings.Cut(strings.TrimPrefix(key, chain.RearchiveRoot), "/"); ok && name != "" {
				job = name
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return out, err
		}
		if job == "" {
			return out, nil
		}
		prefix := chain.RearchiveRoot + job + "/"
		after = chain.RearchiveRoot + job + "0" // '0' sorts right after '/'
		st, err := rearchiveStatus(ctx, chain.Prefixed(s, prefix), prefix)
		if err != nil {
			return out, fmt.Errorf("%s: %w", prefix, err)
		}
		out = append(out, st)
	}
}

func rearchiveStatus(ctx context.Context, s chain.Store, prefix string) (RearchiveStatus, error) {
	st := RearchiveStatus{Prefix: prefix}
	cp, _, err := chain.LatestCheckpoint(ctx, s)
	if err != nil {
		return st, err
	}
	st.Checkpoint = cp
	err = s.List(ctx, chain.ManifestPrefix, "", func(string) error {
		st.Batches++
		return nil
	})
	return st, err
}

// collectJobs lists the job groups (by prefix) and their progress.
func collectJobs(ctx context.Context, src Sources, adm *kadm.Client) ([]JobStatus, error) {
	prefix := src.JobGroupPrefix
	if prefix == "" {
		prefix = DefaultJobGroupPrefix
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	var groups []string
	for _, g := range listed.Groups() {
		if strings.HasPrefix(g, prefix) {
			groups = append(groups, g)
		}
	}
	if len(groups) == 0 {
		return nil, nil
	}
	sort.Strings(groups)
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return nil, err
	}
	var jobs []JobStatus
	var errs []error
	for _, g := range groups {
		l := lags[g]
		var st ProcessorStatus
		fillGroup(&st, l)
		rest := strings.TrimPrefix(g, prefix)
		proc, id, _ := strings.Cut(rest, "-")
		j := JobStatus{Group: g, Processor: proc, Job: id, State: st.State, Members: len(st.Members), Lag: st.Lag, ToLogEnd: st.TotalLag}
		if t, err := lastProgress(ctx, src.ClientOpts, st.Lag); err != nil {
			errs = append(errs, fmt.Errorf("job %s: last progress: %w", g, err))
		} else {
			j.LastProgress = t
		}
		jobs = append(jobs, j)
	}
	return jobs, errors.Join(errs...)
}

// fillGroup copies a described group and its lag into st.
func fillGroup(st *ProcessorStatus, l kadm.DescribedGroupLag) {
	st.State = l.State
	if st.State == "" {
		st.State = "Unknown"
	}
	for _, m := range l.Members {
		mem := Member{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost}
		if m.InstanceID != nil {
			mem.InstanceID = *m.InstanceID
		}
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				for _, p := range t.Partitions {
					mem.Partitions = append(mem.Partitions, fmt.Sprintf("%s/%d", t.Topic, p))
				}
			}
		}
		st.Members = append(st.Members, mem)
	}
	for _, pl := range l.Lag.Sorted() {
		row := PartitionLag{Topic: pl.Topic, Partition: pl.Partition, Committed: pl.Commit.At, End: pl.End.Offset, Lag: pl.Lag}
		if pl.Member != nil {
			row.Member = pl.Member.MemberID
			if pl.Member.InstanceID != nil {
				row.Member = *pl.Member.InstanceID
			}
		}
		if row.Lag > 0 {
			st.TotalLag += row.Lag
		}
		st.Lag = append(st.Lag, row)
	}
}

// lastProgress returns the time of the newest record below the committed
// offsets: the input the group's last committed transaction consumed.
func lastProgress(ctx context.Context, opts []kgo.Opt, lag []PartitionLag) (*time.Time, error) {
	byTopic := map[string]map[int32]kafkax.Range{}
	for _, l := range lag {
		if l.Committed <= 0 {
			continue
		}
		// The record just below the commit may be a transaction marker;
		// a few offsets back always hold the transaction's last record.
		start := max(l.Committed-8, 0)
		if byTopic[l.Topic] == nil {
			byTopic[l.Topic] = map[int32]kafkax.Range{}
		}
		byTopic[l.Topic][l.Partition] = kafkax.Range{Start: start, End: l.Committed}
	}
	var newest *time.Time
	for topic, ranges := range byTopic {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := kafkax.ReadRanges(rctx, opts, topic, ranges, func(r *kgo.Record) error {
			if newest == nil || r.Timestamp.After(*newest) {
				t := r.Timestamp.UTC()
				newest = &t
			}
			return nil
		}, kafkax.IdleTimeout(3*time.Second))
		cancel()
		var stalled *kafkax.StalledError
		if err != nil && !errors.As(err, &stalled) {
			return newest, err
		}
	}
	return newest, nil
}

// readiness asks one member's /readyz.
func readiness(ctx context.Context, hc *http.Client, base string) MemberReady {
	u := strings.TrimSuffix(base, "/")
	if !strings.HasSuffix(u, "/readyz") {
		u += "/readyz"
	}
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	mr := MemberReady{URL: u}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		mr.Detail = err.Error()
		return mr
	}
	resp, err := hc.Do(req)
	if err != nil {
		mr.Detail = "unreachable: " + err.Error()
		return mr
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	mr.Ready = resp.StatusCode/100 == 2
	// A worker's own report; masked all the same, like every output.
	mr.Detail, _ = pan.New().MaskString(strings.Join(strings.Fields(string(body)), " "), pan.Last4)
	return mr
}

// countDLQ counts dead letters by reason, from DLQWindow ago (or the start)
// to the last stable offset.
func countDLQ(ctx context.Context, src Sources, adm *kadm.Client, topic string) (*DLQCounts, error) {
	c := &DLQCounts{Topic: topic, ByReason: map[string]int64{}}
	ranges, err := kafkax.StableRanges(ctx, adm, topic, false)
	if err != nil {
		return c, err
	}
	if src.DLQWindow > 0 {
		since := src.Now().Add(-src.DLQWindow).UTC()
		c.Since = &since
		offs, err := adm.ListOffsetsAfterMilli(ctx, since.UnixMilli(), topic)
		if err != nil {
			return c, err
		}
		offs.Each(func(o kadm.ListedOffset) {
			if r, ok := ranges[o.Partition]; ok && o.Err == nil && o.Offset > r.Start {
				r.Start = min(o.Offset, r.End)
				ranges[o.Partition] = r
			}
		})
	}
	err = kafkax.ReadRanges(ctx, src.ClientOpts, topic, ranges, func(r *kgo.Record) error {
		c.Total++
		var d schemas.DLQRecord
		if err := src.Serde.Decode(ctx, r.Value, &d); err != nil {
			c.ByReason["undecodable"]++
			return nil
		}
		c.ByReason[d.ReasonCode]++
		return nil
	}, kafkax.IdleTimeout(10*time.Second))
	var stalled *kafkax.StalledError
	if errors.As(err, &stalled) {
		err = nil // a compacted or aborted tail: what was read is the count
	}
	return c, err
}

// auditStatus reads the newest checkpoint.
func auditStatus(ctx context.Context, s chain.Store, now time.Time) (*AuditStatus, error) {
	cp, _, err := chain.LatestCheckpoint(ctx, s)
	if err != nil {
		return &AuditStatus{}, err
	}
	a := &AuditStatus{Checkpoint: cp}
	if cp != nil {
		a.Age = now.Sub(cp.Time).Round(time.Second).String()
		sort.Slice(cp.Heads, func(i, j int) bool { return cp.Heads[i].Partition < cp.Heads[j].Partition })
	}
	return a, nil
}
