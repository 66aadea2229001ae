package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/auditstore"
	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/internal/status"
	"github.com/pcistream/pcistream/schemas"
)

// newStatusCmd builds `pcistream status`: the pipeline's state in one place.
func newStatusCmd(cfg *config.Config) *cobra.Command {
	var (
		format    string
		watch     time.Duration
		members   []string
		dlqWindow time.Duration
		noAudit   bool
		groups    = map[string]string{"tokenizer": "pcistream-tokenizer", "masker": "pcistream-masker", "auditor": "pcistream-auditor"}
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each processor's group, members, lag, readiness, dead letters and the audit trail's newest checkpoint",
		Long: `Reads, and changes nothing: per processor its consumer group (state, members and the
partitions each holds, lag per partition, how long ago the group last committed
progress), the /readyz of the members given with --member, and its dead letters by
reason; then the replay and redrive jobs (groups pcistream-replay-<processor>-<job>),
listed apart from the processors with their committed progress; then the audit trail's
newest checkpoint and the head of each partition it signs. What cannot be read is listed at the end; the exit status is 2 only when Kafka cannot be
reached at all.`,
		Example: `  pcistream status
  pcistream status --member tokenizer=127.0.0.1:9464 --member masker=127.0.0.1:9465 --watch 5s
  pcistream status --format json | jq '.processors[] | {name, total_lag}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if format != "table" && format != "json" {
				return usageError{fmt.Errorf("--format %q: use table or json", format)}
			}
			ps, err := statusProcessors(cfg, groups, members)
			if err != nil {
				return usageError{err}
			}
			kopts, err := kafkax.Opts(cfg.Kafka)
			if err != nil {
				return err
			}
			serde, err := schemas.Open(ctx, cfg.Registry, cfg.Topics)
			if err != nil {
				return err
			}
			src := status.Sources{ClientOpts: kopts, Serde: serde, DLQWindow: dlqWindow}
			if !noAudit {
				if src.Audit, err = auditstore.Open(ctx, cfg.S3); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			for {
				rep, err := status.Collect(ctx, src, ps)
				if err != nil {
					return err
				}
				if err := writeStatus(out, format, watch > 0, rep); err != nil {
					return err
				}
				if watch <= 0 {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(watch):
				}
			}
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&format, "format", "o", "table", "output: table or json")
	fl.DurationVar(&watch, "watch", 0, "refresh every this long until interrupted (0: once)")
	fl.StringArrayVar(&members, "member", nil, "PROCESSOR=HOST:PORT of a member's metrics server, to report its /readyz (repeatable)")
	fl.DurationVar(&dlqWindow, "dlq-window", 24*time.Hour, "count dead letters this far back (0: all retained)")
	fl.BoolVar(&noAudit, "no-audit", false, "skip the audit trail (no S3 access)")
	fl.StringToStringVar(&groups, "groups", groups, "consumer group of each processor")
	return cmd
}

// statusProcessors lists the processors to report, with their groups, dead
// letter topics and the members given on the command line.
func statusProcessors(cfg *config.Config, groups map[string]string, members []string) ([]status.Processor, error) {
	dlq := map[string]string{"tokenizer": cfg.Topics.PaymentsDLQ, "masker": cfg.Topics.LogsDLQ}
	var ps []status.Processor
	idx := map[string]int{}
	for _, name := range []string{"tokenizer", "masker", "auditor"} {
		g, ok := groups[name]
		if !ok || g == "" {
			continue
		}
		idx[name] = len(ps)
		ps = append(ps, status.Processor{Name: name, Group: g, DLQ: dlq[name]})
	}
	for _, m := range members {
		name, addr, ok := strings.Cut(m, "=")
		i, known := idx[name]
		if !ok || !known || addr == "" {
			return nil, fmt.Errorf("--member %q: want PROCESSOR=HOST:PORT with PROCESSOR one of tokenizer, masker, auditor", m)
		}
		ps[i].Members = append(ps[i].Members, addr)
	}
	return ps, nil
}

func writeStatus(w io.Writer, format string, clear bool, rep *status.Report) error {
	if format == "json" {
		return status.WriteJSON(w, rep)
	}
	if clear {
		fmt.Fprint(w, "\033[H\033[2J") // redraw in place for --watch
	}
	return status.WriteTable(w, rep)
}
