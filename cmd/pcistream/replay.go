package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/internal/opaudit"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/replay"
	"github.com/pcistream/pcistream/processors/masker"
	"github.com/pcistream/pcistream/schemas"
)

// replayFlags select the range and mode of a replay.
type replayFlags struct {
	partitions []int32
	from, to   int64
	fromTime   string
	toTime     string
	dryRun     bool
	operator   string
	reason     string
	txnID      string
	job        string
	// only and action are set by `dlq redrive`, not by flags: the source
	// offsets to re-process, and the audit action ("redrive").
	only   map[int32][]int64
	action string
	// toTopic is --to-topic where a processor supports it: the main output
	// goes there instead of the live topic (part of the job's identity).
	toTopic string
	// lookback, seedTopics and clientOpts are set by a stateful
	// processor's command (the tokenizer): see replay.Options.
	lookback   time.Duration
	seedTopics []string
	clientOpts []kgo.Opt
	// restore loads the processor's state once the job is fenced
	// (replay.Options.Restore).
	restore func(context.Context) error
}

// names returns the job id and the job's consumer group for processor name.
func (f *replayFlags) names(name string) (job, group string) {
	job = cmp.Or(f.job, f.jobID(name))
	return job, "pcistream-replay-" + name + "-" + job
}

func (f *replayFlags) bind(cmd *cobra.Command) {
	f.bindRange(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&f.dryRun, "dry-run", false, "process the range and report what would be written, writing nothing")
	fl.StringVar(&f.operator, "operator", "", "a name recorded beside the actor, which is the Kafka principal (SASL user or TLS certificate subject)")
	fl.StringVar(&f.reason, "reason", "", "why the replay is run, for the audit event (required)")
	fl.StringVar(&f.job, "job", "", "the replay job's id: a re-run with the same id resumes after its last committed transaction (default derived from the processor, range and --reason)")
	fl.StringVar(&f.txnID, "transactional-id", "", "transactional id for the replay's writes (default the job's group, pcistream-replay-<processor>-<job>)")
}

// bindRange binds the flags that select input records (also used by `dlq
// inspect`, where they select by source coordinates).
func (f *replayFlags) bindRange(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.Int32SliceVar(&f.partitions, "partition", nil, "input partitions (default all)")
	fl.Int64Var(&f.from, "from-offset", -1, "first input offset (default the start)")
	fl.Int64Var(&f.to, "to-offset", -1, "input offsets before this one, exclusive (default the end when the command starts)")
	fl.StringVar(&f.fromTime, "from-time", "", "first input record time (RFC 3339)")
	fl.StringVar(&f.toTime, "to-time", "", "input records before this time (RFC 3339)")
}

func (f *replayFlags) rng(topic string) (replay.Range, error) {
	r := replay.Range{Topic: topic, Partitions: f.partitions, FromOffset: f.from, ToOffset: f.to, Only: f.only}
	for _, tv := range []struct {
		s   string
		dst *time.Time
	}{{f.fromTime, &r.FromTime}, {f.toTime, &r.ToTime}} {
		if tv.s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, tv.s)
		if err != nil {
			return r, fmt.Errorf("time %q: use RFC 3339, e.g. 2026-11-23T10:00:00Z", tv.s)
		}
		*tv.dst = t
	}
	return r, nil
}

// newReplayCmd builds `pcistream replay`.
func newReplayCmd(cfg *config.Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Re-run a processor over an offset or time range, outside its consumer group (audited)",
		Long: `Re-run a processor over a range of its input topic without touching the live
consumer group or its committed offsets. With --dry-run nothing is written and the
command reports what would be; otherwise outputs are written in transactions of the
replay's own. Each replay is a job with its own consumer group
(pcistream-replay-<processor>-<job>): its input offsets commit in the same transaction
as its outputs, so an interrupted replay run again (same command, or same --job)
resumes after its last committed transaction and writes nothing twice, and a finished
job run again writes nothing. The job id is derived from the processor, the range and
--reason. Without --to-offset/--to-time the range ends where the log ends when a run
starts, so a re-run also covers records that arrived since (each still once).
Processors are deterministic, so replaying the same offsets writes byte-identical
records. Every replay, dry or not, is written to the audit topic with
the operator and the reason.`,
	}
	cmd.AddCommand(newReplayMaskerCmd(cfg))
	addReplayCommands(cmd, cfg)
	return cmd
}

func newReplayMaskerCmd(cfg *config.Config) *cobra.Command {
	var (
		f  replayFlags
		mf maskerFlags
	)
	cmd := &cobra.Command{
		Use:   "masker",
		Short: "Replay the masker over a range of the raw logs topic",
		Example: `  pcistream replay masker --dry-run --from-time 2026-11-23T08:00:00Z --reason "INC-1234 parser fix"
  pcistream replay masker --partition 2 --from-offset 1000 --to-offset 2000 --reason "re-mask after policy change"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			serde, kopts, err := connect(ctx, cfg)
			if err != nil {
				return err
			}
			mcfg := *cfg
			if f.toTopic != "" {
				mcfg.Topics.LogsSanitized = f.toTopic
			}
			m, err := mf.build(serde, &mcfg)
			if err != nil {
				return err
			}
			return runReplay(cmd, cfg, serde, kopts, "masker", cfg.Topics.LogsRaw, m, &f)
		},
	}
	f.bind(cmd)
	mf.bind(cmd)
	cmd.Flags().StringVar(&f.toTopic, "to-topic", "", "write the masked records to this topic instead of the live sanitized topic (DLQ and audit records still go to theirs)")
	return cmd
}

// maskerFlags configure a masker run outside its group (replay, redrive).
type maskerFlags struct {
	policy   pan.Policy
	maxBytes int
}

func (mf *maskerFlags) bind(cmd *cobra.Command) {
	mf.policy = pan.First6Last4
	cmd.Flags().Var(&mf.policy, "policy", "what a mask keeps: first6last4, last4 or full")
	cmd.Flags().IntVar(&mf.maxBytes, "max-record-bytes", masker.DefaultMaxRecordBytes, "largest record masked and forwarded; larger ones go to the DLQ")
}

func (mf *maskerFlags) build(serde *schemas.Serde, cfg *config.Config) (*masker.Masker, error) {
	return masker.New(serde, masker.Topics(cfg.Topics), masker.Policy(mf.policy), masker.MaxRecordBytes(mf.maxBytes))
}

// runReplay runs p over the range, reports progress and the result, and
// writes the replay's audit event (also for a dry run, and before a real
// replay writes anything).
func runReplay(cmd *cobra.Command, cfg *config.Config, serde *schemas.Serde, kopts []kgo.Opt, name, topic string, p eos.Processor, f *replayFlags) error {
	ctx := cmd.Context()
	if strings.TrimSpace(f.reason) == "" {
		return fmt.Errorf("a replay needs --reason: it is recorded in the audit trail")
	}
	r, err := f.rng(topic)
	if err != nil {
		return err
	}
	actor, err := kafkax.Principal(cfg.Kafka)
	if err != nil {
		return err
	}
	job, group := f.names(name)
	txnID := cmp.Or(f.txnID, group)
	start := time.Now()
	ev := schemas.AuditEvent{
		Time:    start.UnixMilli(),
		Actor:   actor,
		Action:  cmp.Or(f.action, "replay"),
		Outcome: "started",
		Topic:   topic,
		Subject: name,
		Reason:  f.reason,
		Attrs: map[string]string{
			"dry_run":     fmt.Sprint(f.dryRun),
			"partitions":  fmt.Sprint(f.partitions),
			"from_offset": fmt.Sprint(f.from), "to_offset": fmt.Sprint(f.to),
			"from_time": f.fromTime, "to_time": f.toTime,
			"job": job, "to_topic": f.toTopic,
		},
	}
	if f.operator != "" {
		ev.Attrs["operator_claimed"] = f.operator // a name typed in, not an identity
	}
	if err := opaudit.Write(ctx, kopts, serde, cfg.Topics.AuditEvents, &ev); err != nil {
		return fmt.Errorf("recording the replay in the audit trail (nothing replayed): %w", err)
	}
	errw := cmd.ErrOrStderr()
	fmt.Fprintf(errw, "job %s (progress in consumer group %s)\n", job, group)
	// The replay's audit events are its own facts, under the job's ids.
	p = replay.RelabelAudit(p, serde, cfg.Topics.AuditEvents, job)
	res, err := replay.Run(ctx, p, r, replay.Options{
		ClientOpts:      append(append([]kgo.Opt(nil), kopts...), f.clientOpts...),
		DryRun:          f.dryRun,
		Lookback:        f.lookback,
		SeedTopics:      f.seedTopics,
		Restore:         f.restore,
		Group:           group,
		TransactionalID: txnID,
		Progress: func(res replay.Result) {
			fmt.Fprintf(errw, "\rreplayed %d records (%d look-back) in %d transactions, %v", res.Read, res.Seeded, res.Batches, res.Duration.Round(time.Millisecond))
		},
	})
	fmt.Fprintln(errw)
	if len(res.Resumed) > 0 && !res.Finished {
		fmt.Fprintf(errw, "resumed job %s after its last committed transaction: %s\n", job, offsetsText(res.Resumed))
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	done := ev
	done.ID = "" // its own event, its own id (opaudit derives it)
	done.Time = time.Now().UnixMilli()
	done.Outcome = outcome
	done.Attrs = map[string]string{"read": fmt.Sprint(res.Read), "dry_run": fmt.Sprint(f.dryRun), "job": job,
		"finished_earlier": fmt.Sprint(res.Finished)}
	if len(res.Resumed) > 0 {
		done.Attrs["resumed_from"] = offsetsText(res.Resumed)
	}
	for t, n := range res.Written {
		done.Attrs["wrote:"+t] = fmt.Sprint(n)
	}
	if aerr := opaudit.Write(ctx, kopts, serde, cfg.Topics.AuditEvents, &done); aerr != nil && err == nil {
		err = fmt.Errorf("recording the replay's outcome in the audit trail: %w", aerr)
	}
	if err != nil {
		return fmt.Errorf("replay %s: %w", name, err)
	}
	out := cmd.OutOrStdout()
	if res.Finished {
		fmt.Fprintf(out, "job %s already finished: nothing replayed, nothing written (give --job to start another)\n", job)
		return nil
	}
	verb := "wrote"
	if f.dryRun {
		verb = "would write"
	}
	fmt.Fprintf(out, "replayed %d records of %s", res.Read, topic)
	parts := make([]int32, 0, len(res.Ranges))
	for p := range res.Ranges {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		fmt.Fprintf(out, " [p%d %d..%d)", p, res.Ranges[p][0], res.Ranges[p][1])
	}
	fmt.Fprintln(out)
	if res.Seeded > 0 {
		fmt.Fprintf(out, "  ran %d look-back records for the idempotency state only\n", res.Seeded)
	}
	topics := make([]string, 0, len(res.Written))
	for t := range res.Written {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		fmt.Fprintf(out, "  %s %d records to %s\n", verb, res.Written[t], t)
	}
	return nil
}

// jobID derives a replay job's id from what it replays and why, so that the
// same command run again resumes the same job.
func (f *replayFlags) jobID(name string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%v|%d|%d|%s|%s|%s\n", cmp.Or(f.action, "replay"), name, f.partitions, f.from, f.to, f.fromTime, f.toTime, f.reason)
	if f.toTopic != "" {
		fmt.Fprintf(h, "to:%s\n", f.toTopic)
	}
	parts := make([]int32, 0, len(f.only))
	for p := range f.only {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		offs := append([]int64(nil), f.only[p]...)
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		fmt.Fprintf(h, "%d:%v\n", p, offs)
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// offsetsText renders per-partition offsets as "p0@12 p3@40".
func offsetsText(m map[int32]int64) string {
	parts := make([]int32, 0, len(m))
	for p := range m {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	s := make([]string, len(parts))
	for i, p := range parts {
		s[i] = fmt.Sprintf("p%d@%d", p, m[p])
	}
	return strings.Join(s, " ")
}
