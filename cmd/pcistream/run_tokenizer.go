package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/internal/state"
	"github.com/pcistream/pcistream/internal/telemetry"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/processors/tokenizer"
)

// tokenizerFlags are the flags of `pcistream run tokenizer`.
type tokenizerFlags struct {
	kms          kmsFlags
	group        string
	txnID        string
	window       time.Duration
	maxBytes     int
	dataKeyReuse int
	maxPoll      int
	stateDir     string
	stateCache   int64
	stateFilter  int64
	stateJSON    bool
	grp          groupFlags
}

// newRunTokenizerCmd builds `pcistream run tokenizer`. cfg is resolved by the
// root command (flags, PCISTREAM_* env, config file) before RunE runs.
func newRunTokenizerCmd(cfg *config.Config) *cobra.Command {
	var f tokenizerFlags
	cmd := &cobra.Command{
		Use:   "tokenizer",
		Short: "Tokenize card numbers: payments.raw to payments.tokenized + pci.vault, exactly once",
		Long: `The tokenizer reads raw payment events (Avro in the Confluent wire format, or JSON
objects with the same field names), validates them (PAN 12-19 digits, Luhn, known card
network, expiry not past at the event time, amount > 0, ISO 4217 currency) and, in the
Kafka transaction that commits its input offsets, writes:
  - the tokenized event (token, BIN, last 4, brand, key version, context id; never the
    PAN, CVV or cardholder name) to the tokenized topic,
  - the vault entry (PAN under AES-256-GCM, data key wrapped by the key version's KEK)
    to the compacted vault topic, keyed by token,
  - an audit event, and an entry on the compacted idempotency-state topic.
Invalid input goes to the payments DLQ with a reason code and a masked copy (CVV removed).
A payment whose idempotency key was tokenized within --idempotency-window (a retried
webhook) yields no second event, whatever partitioner the producer used: payments are
first re-keyed by idempotency key onto the repartition topic (--topic-tokenizer-repartition,
in PCI scope like payments.raw), in the same transactions.

The idempotency state lives on local disk (--state-dir, Pebble; memory bounded by
--state-cache-bytes) with the compacted idempotency topic as its changelog. Keep
--state-dir on a persistent volume: a restarted worker then replays only the changelog
tail after its checkpoint; a new one restores the whole window. /readyz stays not-ready
while any assigned partition is restoring.

Keys come from the keyring (--keyring FILE, see 'pcistream keys'); tokens use its
current version.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runTokenizer(ctx, cfg, &f)
		},
	}
	fl := cmd.Flags()
	f.kms.bind(cmd)
	f.grp.bind(cmd)
	fl.StringVar(&f.group, "group", "pcistream-"+tokenizer.Name, "consumer group")
	fl.StringVar(&f.txnID, "transactional-id", "", "transactional id, stable across restarts and unique per live worker (default pcistream-tokenizer-<hostname>)")
	fl.DurationVar(&f.window, "idempotency-window", tokenizer.DefaultIdempotencyWindow, "a repeated idempotency key within this window (by record timestamps) is a duplicate")
	fl.IntVar(&f.maxBytes, "max-record-bytes", tokenizer.DefaultMaxRecordBytes, "largest input value accepted; larger ones go to the DLQ")
	fl.IntVar(&f.maxPoll, "max-poll-records", 1000, "input records per transaction at most; 100-250 lowers tail latency at some throughput cost (see bench/RESULTS.md)")
	fl.StringVar(&f.stateDir, "state-dir", "", "directory of the idempotency state store, one per worker, kept across restarts (default: a temporary directory, fully restored at each start)")
	fl.Int64Var(&f.stateCache, "state-cache-bytes", state.DefaultCacheBytes, "block cache of the state store: bounds its memory whatever the key count")
	fl.BoolVar(&f.stateJSON, "state-json-entries", false, "write idempotency entries in the JSON format of releases before 2026-11-30, which they can read: for a rolling upgrade from such a release, run every worker with this first, then restart them without it (both formats are always read)")
	fl.Int64Var(&f.stateFilter, "state-filter-bytes", state.DefaultFilterBytes, "memory for the in-memory filters that answer new idempotency keys without a disk read (10 bits a key held; past it lookups read the store; -1: off)")
	fl.IntVar(&f.dataKeyReuse, "data-key-reuse", 0, "records per vault data key (0: 10000 within an hour with --kms aws, one KMS call per data key; 4096 within 10 minutes for local X25519 key versions; 1 for v1 keyrings)")
	return cmd
}

func runTokenizer(ctx context.Context, cfg *config.Config, f *tokenizerFlags) error {
	log := newLogger(cfg, os.Stderr)
	var vopts []token.VaultOpt
	switch {
	case f.dataKeyReuse > 0:
		vopts = append(vopts, token.DataKeyReuse(f.dataKeyReuse, time.Hour))
	case f.kms.kind == "aws":
		vopts = append(vopts, token.DataKeyReuse(10000, time.Hour))
	}
	kr, vault, err := openKeyring(ctx, cfg, &f.kms, vopts...)
	if err != nil {
		return err
	}
	if kr.Role() == token.RoleFull {
		log.Warn("the keyring can also open vault records; give the tokenizer its own keyring (pcistream keys init writes a tokenizer and a detokenize keyring)", "role", string(kr.Role()))
	}
	serde, clientOpts, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	reg := telemetry.NewRegistry()
	tk, err := tokenizer.New(kr, vault, serde,
		tokenizer.StateDir(f.stateDir),
		tokenizer.StateCacheBytes(f.stateCache),
		tokenizer.StateFilterBytes(f.stateFilter),
		tokenizer.StateJSONEntries(f.stateJSON),
		tokenizer.StateMetrics(state.NewMetrics(reg)),
		tokenizer.Topics(cfg.Topics),
		tokenizer.IdempotencyWindow(f.window),
		tokenizer.MaxRecordBytes(f.maxBytes),
		tokenizer.Logger(log),
		tokenizer.StateClientOpts(clientOpts...),
	)
	if err != nil {
		return err
	}
	defer tk.Close()
	reg.AddReadiness("tokenizer-state", tk.StateReady)
	gopts, err := f.grp.opts()
	if err != nil {
		return err
	}
	opts := append([]eos.Opt{eos.Group(f.group), eos.Registerer(reg), eos.Logger(log), eos.MaxPollRecords(f.maxPoll)}, gopts...)
	if f.txnID != "" {
		opts = append(opts, eos.TransactionalID(f.txnID))
	}
	loop, err := tokenizer.NewLoop(tk, clientOpts, opts...)
	if err != nil {
		return err
	}
	log.Info("tokenizer starting", "from", cfg.Topics.PaymentsRaw, "to", cfg.Topics.PaymentsTokenized,
		"vault", cfg.Topics.Vault, "dlq", cfg.Topics.PaymentsDLQ, "state", cfg.Topics.Idempotency,
		"key_version", kr.Current(), "group", f.group)
	return runWorker(ctx, cfg, reg, tokenizer.Name, loop, log)
}
