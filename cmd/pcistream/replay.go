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
	// only and action are set by `dlq redrive`, not by flags: the source
	// offsets to re-process, and the audit action ("redrive").
	only   map[int32][]int64
	action string
}

func (f *replayFlags) bind(cmd *cobra.Command) {
	f.bindRange(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&f.dryRun, "dry-run", false, "process the range and report what would be written, writing nothing")
	fl.StringVar(&f.operator, "operator", "", "a name recorded beside the actor, which is the Kafka principal (SASL user or TLS certificate subject)")
	fl.StringVar(&f.reason, "reason", "", "why the replay is run, for the audit event (required)")
	fl.StringVar(&f.txnID, "transactional-id", "", "transactional id for the replay's writes (default pcistream-replay-<processor>)")
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
replay's own. Processors are deterministic, so replaying the same offsets writes
byte-identical records. Every replay, dry or not, is written to the audit topic with
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
			m, err := mf.build(serde, cfg)
			if err != nil {
				return err
			}
			return runReplay(cmd, cfg, serde, kopts, "masker", cfg.Topics.LogsRaw, m, &f)
		},
	}
	f.bind(cmd)
	mf.bind(cmd)
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
	txnID := f.txnID
	if txnID == "" {
		txnID = "pcistream-replay-" + name
	}
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
		},
	}
	if f.operator != "" {
		ev.Attrs["operator_claimed"] = f.operator // a name typed in, not an identity
	}
	if err := writeAudit(ctx, kopts, serde, cfg.Topics.AuditEvents, &ev); err != nil {
		return fmt.Errorf("recording the replay in the audit trail (nothing replayed): %w", err)
	}
	errw := cmd.ErrOrStderr()
	res, err := replay.Run(ctx, p, r, replay.Options{
		ClientOpts:      kopts,
		DryRun:          f.dryRun,
		TransactionalID: txnID,
		Progress: func(res replay.Result) {
			fmt.Fprintf(errw, "\rreplayed %d records in %v", res.Read, res.Duration.Round(time.Millisecond))
		},
	})
	fmt.Fprintln(errw)
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	done := ev
	done.Time = time.Now().UnixMilli()
	done.Outcome = outcome
	done.Attrs = map[string]string{"read": fmt.Sprint(res.Read), "dry_run": fmt.Sprint(f.dryRun)}
	for t, n := range res.Written {
		done.Attrs["wrote:"+t] = fmt.Sprint(n)
	}
	if aerr := writeAudit(ctx, kopts, serde, cfg.Topics.AuditEvents, &done); aerr != nil && err == nil {
		err = fmt.Errorf("recording the replay's outcome in the audit trail: %w", aerr)
	}
	if err != nil {
		return fmt.Errorf("replay %s: %w", name, err)
	}
	out := cmd.OutOrStdout()
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

// writeAudit writes one audit event, durably, before the caller goes on.
func writeAudit(ctx context.Context, kopts []kgo.Opt, serde *schemas.Serde, topic string, ev *schemas.AuditEvent) error {
	if ev.ID == "" {
		h := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%s|%d|%s", ev.Actor, ev.Action, ev.Subject, ev.Time, ev.Outcome)))
		ev.ID = hex.EncodeToString(h[:16])
	}
	b, err := serde.Encode(ev)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(ev.Subject), Value: b}).FirstErr()
}
