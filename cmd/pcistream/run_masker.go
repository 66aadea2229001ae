package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/telemetry"
	"github.com/pcistream/pcistream/processors/masker"
)

// newRunMaskerCmd builds `pcistream run masker`. cfg is resolved by the root
// command (flags, PCISTREAM_* env, config file) before RunE runs.
func newRunMaskerCmd(cfg *config.Config) *cobra.Command {
	var (
		policy   = pan.First6Last4
		maxBytes int
		group    string
		txnID    string
		grp      groupFlags
	)
	cmd := &cobra.Command{
		Use:   "masker",
		Short: "Mask card numbers in log records: logs.raw to logs.sanitized, exactly once",
		Long: `The masker reads raw log records, masks every card number (PAN) in record keys,
values and header values (as bytes: text, JSON and binary alike), and writes them to
the sanitized logs topic in the same Kafka transaction that commits its input offsets.
Records larger than --max-record-bytes go to the logs dead-letter topic with a reason
header and a masked, truncated copy; nothing is passed through raw. Each transaction
writes one audit event per input partition with counts, never a PAN.

Metrics (on --metrics-addr): pcistream_pans_masked_total{policy,topic},
pcistream_masker_dlq_total, and the shared loop's records/transactions/lag.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runMasker(ctx, cfg, policy, maxBytes, group, txnID, &grp)
		},
	}
	grp.bind(cmd)
	f := cmd.Flags()
	f.Var(&policy, "policy", "what a mask keeps: first6last4, last4 or full")
	f.IntVar(&maxBytes, "max-record-bytes", masker.DefaultMaxRecordBytes, "largest record (key+value+headers) masked and forwarded; larger ones go to the DLQ")
	f.StringVar(&group, "group", "pcistream-"+masker.Name, "consumer group")
	f.StringVar(&txnID, "transactional-id", "", "transactional id, stable across restarts and unique per live worker (default pcistream-masker-<hostname>)")
	cmd.SilenceUsage = true
	return cmd
}

func runMasker(ctx context.Context, cfg *config.Config, policy pan.Policy, maxBytes int, group, txnID string, grp *groupFlags) error {
	log := newLogger(cfg, os.Stderr)
	serde, clientOpts, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	reg := telemetry.NewRegistry()
	m, err := masker.New(serde,
		masker.Topics(cfg.Topics),
		masker.Policy(policy),
		masker.MaxRecordBytes(maxBytes),
		masker.Logger(log),
		masker.Registerer(reg),
	)
	if err != nil {
		return err
	}
	gopts, err := grp.opts()
	if err != nil {
		return err
	}
	opts := append([]eos.Opt{eos.Group(group), eos.Registerer(reg), eos.Logger(log)}, gopts...)
	if txnID != "" {
		opts = append(opts, eos.TransactionalID(txnID))
	}
	loop, err := masker.NewLoop(m, clientOpts, opts...)
	if err != nil {
		return err
	}
	log.Info("masker starting", "from", cfg.Topics.LogsRaw, "to", cfg.Topics.LogsSanitized, "dlq", cfg.Topics.LogsDLQ,
		"policy", policy.String(), "group", group)
	return runWorker(ctx, cfg, reg, masker.Name, loop, log)
}
