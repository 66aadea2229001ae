package main

import (
	"errors"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/processors/tokenizer"
)

// replayTokenizerFlags configure the tokenizer a replay runs.
type replayTokenizerFlags struct {
	kms      kmsFlags
	window   time.Duration
	maxBytes int
	lookback time.Duration
}

func newReplayTokenizerCmd(cfg *config.Config) *cobra.Command {
	var (
		f  replayFlags
		tf replayTokenizerFlags
	)
	cmd := &cobra.Command{
		Use:   "tokenizer",
		Short: "Replay the tokenizer over a range of the raw payments topic (byte-identical outputs)",
		Long: `Runs the tokenizer's two steps (re-key by idempotency key, tokenize) over a range of
the raw payments topic in one pass, outside the live group, and writes the tokenized
events, vault entries, dead letters and audit events the live tokenizer wrote for
those records: the same bytes (tokens, context ids, audit ids and timestamps derive
from the input and the keyring; vault entries are sealed afresh, same token).

Idempotency: the replay never reads or writes the live idempotency state. It keeps
its own, on the job's compacted topic <job group>.idempotency (created with the
repartition topic's partitions), written in the job's transactions, so a re-run of
an interrupted job restores exactly what its committed transactions decided. With
--from-time the job first runs the --lookback span (default the idempotency window)
before the range for its state only, so a retry in the range whose first attempt
came earlier is a duplicate again, as it was live. Records of one key on different
input partitions are ordered as the replay reads them (as live, where they race on
the repartition topic).

Needs the tokenizer keyring (--keyring): the replay makes tokens and seals vault
entries like the live worker, and the right to create the job's state topic (a
--dry-run creates it too, empty, and keeps its decisions in memory).`,
		Example: `  pcistream replay tokenizer --from-time 2026-11-28T14:00:00Z --to-time 2026-11-28T15:00:00Z --dry-run --reason "INC-42 check"
  pcistream replay tokenizer --partition 0 --from-offset 100 --to-offset 200 --to-topic payments.tokenized.check --reason "INC-42 compare"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReplayTokenizer(cmd, cfg, &f, &tf)
		},
	}
	f.bind(cmd)
	tf.kms.bind(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.toTopic, "to-topic", "", "write the tokenized events to this topic instead of the live tokenized topic (vault, DLQ and audit records still go to theirs)")
	fl.DurationVar(&tf.window, "idempotency-window", tokenizer.DefaultIdempotencyWindow, "as the live tokenizer's --idempotency-window")
	fl.IntVar(&tf.maxBytes, "max-record-bytes", tokenizer.DefaultMaxRecordBytes, "largest input value accepted; larger ones go to the DLQ")
	fl.DurationVar(&tf.lookback, "lookback", -1, "with --from-time, the span before it run for the idempotency state only (default the idempotency window; 0 for none)")
	return cmd
}

func runReplayTokenizer(cmd *cobra.Command, cfg *config.Config, f *replayFlags, tf *replayTokenizerFlags) error {
	ctx := cmd.Context()
	if strings.TrimSpace(f.reason) == "" {
		return usageError{errors.New("a replay needs --reason: it is recorded in the audit trail")}
	}
	kr, vault, err := openKeyring(ctx, cfg, &tf.kms)
	if err != nil {
		return err
	}
	if kr.Role() == token.RoleDetokenizer {
		return usageError{errors.New("--keyring is a detokenize keyring: a tokenizer replay needs the tokenizer keyring")}
	}
	serde, kopts, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	_, group := f.names("tokenizer")
	topics := cfg.Topics
	topics.TokenizerRepartition = topics.RepartitionTopic() // keep the live name when Idempotency changes below
	topics.Idempotency = group + ".idempotency"
	if f.toTopic != "" {
		topics.PaymentsTokenized = f.toTopic
	}
	parts, err := tokenizer.EnsureReplayState(ctx, kopts, cfg.Topics.RepartitionTopic(), topics.Idempotency)
	if err != nil {
		return err
	}
	tk, err := tokenizer.New(kr, vault, serde,
		tokenizer.Topics(topics),
		tokenizer.IdempotencyWindow(tf.window),
		tokenizer.MaxRecordBytes(tf.maxBytes),
		tokenizer.Logger(newLogger(cfg, cmd.ErrOrStderr())),
		tokenizer.StateClientOpts(kopts...),
	)
	if err != nil {
		return err
	}
	defer tk.Close()
	rp := tokenizer.NewReplayProcessor(tk, parts)
	if f.dryRun {
		rp.DryRun()
	}
	// Restored by replay.Run once the job's earlier transactions settled.
	f.restore = rp.Restore
	f.lookback = tf.lookback
	if f.lookback < 0 {
		f.lookback = tf.window
	}
	f.seedTopics = []string{topics.Idempotency}
	f.clientOpts = []kgo.Opt{kgo.RecordPartitioner(tokenizer.Partitioner(topics.Idempotency))}
	return runReplay(cmd, cfg, serde, kopts, "tokenizer", cfg.Topics.PaymentsRaw, rp, f)
}
