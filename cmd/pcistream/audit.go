package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/anchor"
	"github.com/pcistream/pcistream/internal/auditstore"
	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/kafkax"
)

// newAuditCmd builds `pcistream audit` (export, prove, keygen).
func newAuditCmd(cfg *config.Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Work with the audit trail: export records for an assessor, prove inclusion, save anchors, create keys",
	}
	cmd.AddCommand(newAuditExportCmd(cfg), newAuditProveCmd(cfg), newAuditKeygenCmd(), newAuditCheckpointCmd(cfg))
	return cmd
}

// parseTime accepts RFC 3339, a date (UTC midnight), or unix milliseconds.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	return time.Time{}, fmt.Errorf("time %q: use RFC 3339 (2026-11-23T10:00:00Z), a date (2026-11-23) or unix milliseconds", s)
}

func newAuditExportCmd(cfg *config.Config) *cobra.Command {
	var (
		src      chainSource
		from, to string
		parts    []int32
	)
	cmd := &cobra.Command{
		Use:   "export --from T --to T",
		Short: "Stream verified audit records of a time range as JSON Lines",
		Long: `export verifies the chain and writes to stdout, as JSON Lines, every archived record whose
event time is in [--from, --to). Only batches that verify (object hash, Merkle root, link) are
exported; it exits non-zero if any defect was found. Records are in chain order per partition.`,
		Example: `  pcistream audit export --from 2026-11-01 --to 2026-12-01 --public-key audit-signing.pub.pem > november.jsonl`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			f, err := parseTime(from)
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			t := time.Now() // as the help says; events stamped in the future are outside the range
			if to != "" {
				if t, err = parseTime(to); err != nil {
					return fmt.Errorf("--to: %w", err)
				}
			}
			fms, tms := f.UnixMilli(), t.UnixMilli()
			store, opts, err := src.open(ctx, cfg)
			if err != nil {
				return err
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			defer w.Flush()
			var n int
			opts = append(opts,
				chain.SkipObjects(func(m *chain.Manifest) bool { return m.MaxTimeMs < fms || m.MinTimeMs >= tms }),
				chain.OnBatch(func(m *chain.Manifest, recs []chain.Record) error {
					for _, r := range recs {
						if r.TimeMs < fms || r.TimeMs >= tms {
							continue
						}
						b, err := json.Marshal(r)
						if err != nil {
							return err
						}
						w.Write(b)
						w.WriteByte('\n')
						n++
					}
					return nil
				}),
				chain.OnProgress(progressPrinter(cmd.ErrOrStderr(), stderrIsTerminal())))
			if len(parts) > 0 {
				opts = append(opts, chain.OnlyPartitions(parts...))
			}
			rep, err := chain.Verify(ctx, store, opts...)
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported %d records from %s to %s\n", n, f.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339))
			for _, d := range rep.Defects {
				fmt.Fprintln(cmd.ErrOrStderr(), "DEFECT", d)
			}
			if !rep.OK() {
				return fmt.Errorf("the audit trail has %d defect(s): records of defective batches were not exported; run 'pcistream verify'", len(rep.Defects))
			}
			return nil
		},
	}
	src.bind(cmd)
	cmd.Flags().StringVar(&from, "from", "", "start of the range, inclusive (RFC 3339, date, or unix ms)")
	cmd.Flags().StringVar(&to, "to", "", "end of the range, exclusive (default: now)")
	cmd.Flags().Int32SliceVar(&parts, "partition", nil, "only these partitions")
	cmd.MarkFlagRequired("from")
	return cmd
}

func newAuditProveCmd(cfg *config.Config) *cobra.Command {
	var (
		src       chainSource
		partition int32
		offset    int64
	)
	cmd := &cobra.Command{
		Use:   "prove --partition P --offset O",
		Short: "Print an RFC 9162 inclusion proof of one audit record against the latest signed checkpoint",
		Long: `prove verifies the partition's chain, finds the record archived from the given Kafka offset and
prints, as JSON, the record, its leaf hash, the audit path and the signed checkpoint it leads to.
Anyone holding the public key can check it with a standard RFC 9162 verifier.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			store, opts, err := src.open(ctx, cfg)
			if err != nil {
				return err
			}
			ip, rep, err := chain.Prove(ctx, store, partition, offset, opts...)
			if err != nil {
				if rep != nil {
					for _, d := range rep.Defects {
						fmt.Fprintln(cmd.ErrOrStderr(), "DEFECT", d)
					}
				}
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(ip)
		},
	}
	src.bind(cmd)
	cmd.Flags().Int32Var(&partition, "partition", 0, "audit events partition")
	cmd.Flags().Int64Var(&offset, "offset", -1, "Kafka offset of the audit record")
	cmd.MarkFlagRequired("offset")
	return cmd
}

func newAuditKeygenCmd() *cobra.Command {
	var (
		out       string
		ifMissing bool
	)
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Create an Ed25519 checkpoint signing key and its public key beside it (key.pem → key.pub.pem)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := os.Stat(out); err == nil && ifMissing {
				fmt.Fprintf(cmd.OutOrStdout(), "signing key %s exists; left as it is\n", out)
				return nil
			}
			priv, err := chain.GenerateKey()
			if err != nil {
				return err
			}
			key, _ := chain.ParsePrivateKey(priv)
			pubPath := strings.TrimSuffix(out, ".pem") + ".pub.pem"
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("creating %s (an existing key is never overwritten): %w", out, err)
			}
			if _, err := f.Write(priv); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			pub := chain.NewSigner(key).Public()
			if err := os.WriteFile(pubPath, chain.EncodePublicKey(pub), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signing key: %s\npublic key:  %s\nkey id:      %s\n", out, pubPath, chain.KeyID(pub))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "private key file to create (mode 0600)")
	cmd.Flags().BoolVar(&ifMissing, "if-missing", false, "succeed without changes when FILE exists (for idempotent setup jobs)")
	cmd.MarkFlagRequired("out")
	return cmd
}

func newAuditCheckpointCmd(cfg *config.Config) *cobra.Command {
	var (
		src  chainSource
		out  string
		from string
	)
	cmd := &cobra.Command{
		Use:   "checkpoint --out FILE",
		Short: "Save the newest signed checkpoint to a file kept outside the bucket (an anchor for verify --checkpoint)",
		Long: `checkpoint writes the newest checkpoint signed by a trusted key, byte for byte, to --out: from
the Kafka anchor topic (--topic-audit-checkpoints, default) or from the bucket (--from bucket).
Keep the file where whoever can write the audit bucket cannot (a ticket, a WORM share, an
assessor's archive). 'pcistream verify --checkpoint FILE' then fails if the trail no longer
reaches it, even when the newest checkpoints were removed from the bucket along with the
batches they signed. The file is never overwritten.`,
		Example: `  pcistream audit checkpoint --public-key audit-signing.pub.pem --out anchor-$(date +%F).json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			pubs, err := src.keys()
			if err != nil {
				return operational(err)
			}
			keys := chain.NewKeyring(pubs...)
			var c *chain.Checkpoint
			var b []byte
			switch from {
			case "kafka":
				kopts, err := kafkax.Opts(cfg.Kafka)
				if err != nil {
					return operational(fmt.Errorf("kafka options: %w", err))
				}
				anchors, err := anchor.Read(ctx, kopts, cfg.Topics.AuditCheckpoints, cfg.Topics.AuditEvents)
				if err != nil {
					return operational(fmt.Errorf("%w: check --kafka-brokers, or use --from bucket", err))
				}
				c, b = anchor.Newest(anchors, keys)
			case "bucket":
				st, err := auditstore.Open(ctx, cfg.S3)
				if err != nil {
					return operational(err)
				}
				if c, b, err = chain.LatestCheckpoint(ctx, st); err != nil {
					return operational(err)
				}
				if c != nil {
					if err := keys.VerifyCheckpoint(c); err != nil {
						return defective("the bucket's newest checkpoint is not trusted: %v: run 'pcistream verify'", err)
					}
				}
			default:
				return operational(fmt.Errorf("--from %q: want kafka or bucket", from))
			}
			if c == nil {
				return defective("no checkpoint signed by a trusted key in %s yet: run the auditor until it signs one", from)
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return operational(fmt.Errorf("creating %s (an anchor is never overwritten): %w", out, err))
			}
			if _, err := f.Write(b); err != nil {
				f.Close()
				return operational(err)
			}
			if err := f.Close(); err != nil {
				return operational(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "checkpoint #%d of %s (signed by %s, %d partitions) saved to %s\n", c.Sequence, c.Time.Format(time.RFC3339), c.KeyID, len(c.Heads), out)
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&src.publicKeys, "public-key", nil, "trusted PEM Ed25519 public key of the auditor (repeatable)")
	cmd.Flags().StringVar(&src.trustFile, "trust-file", "", "file of trusted PEM public keys")
	cmd.Flags().StringVar(&out, "out", "", "file to create")
	cmd.Flags().StringVar(&from, "from", "kafka", "where to read the newest checkpoint: kafka (the anchor topic) or bucket")
	cmd.MarkFlagRequired("out")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return operational(fmt.Errorf("%w (see --help)", err)) })
	return cmd
}
