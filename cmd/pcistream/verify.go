package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/anchor"
	"github.com/pcistream/pcistream/internal/auditstore"
	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/internal/pan"
)

// verifyExit is an error with the exit code verify and the audit commands
// promise: 1 when the trail has defects (or is empty), 2 when it could not
// be checked at all (unreachable S3 or Kafka, bad flags, unreadable keys).
type verifyExit struct {
	code int
	err  error
}

func (e *verifyExit) Error() string { return e.err.Error() }
func (e *verifyExit) Unwrap() error { return e.err }

// ExitCode implements exitCoder.
func (e *verifyExit) ExitCode() int { return e.code }

func operational(err error) error {
	if err == nil {
		return nil
	}
	return &verifyExit{code: 2, err: err}
}

func defective(format string, args ...any) error {
	return &verifyExit{code: 1, err: fmt.Errorf(format, args...)}
}

// chainSource says where a chain is read from (the configured bucket, or an
// offline copy on disk), which keys are trusted, and which checkpoints held
// outside the bucket it is checked against.
type chainSource struct {
	dir         string
	publicKeys  []string
	trustFile   string
	insecure    bool
	checkpoints []string
	noKafka     bool
	prefix      string
}

func (s *chainSource) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&s.dir, "dir", "", "verify an offline copy of the bucket in this directory instead of S3 (e.g. made with 'aws s3 sync s3://BUCKET/audit/ DIR/audit/'); retention cannot be checked offline")
	fl.StringSliceVar(&s.publicKeys, "public-key", nil, "trusted PEM Ed25519 public key of the auditor (repeatable: the current key and the ones it replaced)")
	fl.StringVar(&s.trustFile, "trust-file", "", "file of trusted PEM public keys, one or more blocks (alternative to --public-key)")
	fl.BoolVar(&s.insecure, "insecure-trust-bucket-keys", false, "INSECURE: also trust the public keys published in the bucket, which anyone able to write the bucket can replace")
	fl.StringSliceVar(&s.checkpoints, "checkpoint", nil, "a checkpoint file held outside the bucket (from 'pcistream audit checkpoint --out'); the trail must reach it (repeatable)")
	fl.BoolVar(&s.noKafka, "no-kafka", false, "do not read the checkpoint anchors (--topic-audit-checkpoints) and the committed offsets of --topic-audit-events from Kafka (offline verification)")
	fl.StringVar(&s.prefix, "prefix", "", "verify the trail under this key prefix on its own (a re-archive by 'pcistream replay auditor', e.g. replays/<job>/): its own heads and checkpoints; the live trail's Kafka anchors do not apply, and committed records before each partition's first chained offset are not missing")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return operational(fmt.Errorf("%w (see --help)", err)) })
}

// keys loads the operator-pinned keys. Without any (and without the
// insecure flag) nothing can be verified: a usage error.
func (s *chainSource) keys() ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	for _, f := range s.publicKeys {
		ks, err := chain.LoadPublicKeys(f)
		if err != nil {
			return nil, fmt.Errorf("--public-key: %w", err)
		}
		out = append(out, ks...)
	}
	if s.trustFile != "" {
		ks, err := chain.LoadPublicKeys(s.trustFile)
		if err != nil {
			return nil, fmt.Errorf("--trust-file: %w", err)
		}
		out = append(out, ks...)
	}
	if len(out) == 0 && !s.insecure {
		return nil, errors.New("no trusted key: pass the auditor's public key with --public-key FILE or --trust-file FILE (or PCISTREAM_PUBLIC_KEY); keys published in the bucket are never trusted by default")
	}
	return out, nil
}

func (s *chainSource) open(ctx context.Context, cfg *config.Config) (chain.Store, []chain.VerifyOpt, error) {
	keys, err := s.keys()
	if err != nil {
		return nil, nil, operational(err)
	}
	opts := []chain.VerifyOpt{chain.TrustedKey(keys...)}
	if s.insecure {
		opts = append(opts, chain.InsecureTrustBucketKeys())
	}
	for _, f := range s.checkpoints {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, operational(fmt.Errorf("--checkpoint: %w", err))
		}
		opts = append(opts, chain.Anchors(chain.Anchor{Source: "file " + f, Bytes: b}))
	}
	if !s.noKafka {
		kopts, err := kafkax.Opts(cfg.Kafka)
		if err != nil {
			return nil, nil, operational(fmt.Errorf("kafka options: %w", err))
		}
		kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if s.prefix == "" {
			anchors, err := anchor.Read(kctx, kopts, cfg.Topics.AuditCheckpoints, cfg.Topics.AuditEvents)
			cancel()
			if err != nil {
				return nil, nil, operational(fmt.Errorf("reading the checkpoint anchors from Kafka (%s): %w: check --kafka-brokers, or pass --no-kafka to verify against the bucket and --checkpoint files only", cfg.Topics.AuditCheckpoints, err))
			}
			opts = append(opts, chain.Anchors(anchors...))
		} else {
			cancel()
			opts = append(opts, chain.PartialTrail())
		}
		opts = append(opts, chain.CheckOffsets(anchor.Offsets{Opts: kopts}))
	}
	if s.dir != "" {
		if _, err := os.Stat(s.dir); err != nil {
			return nil, nil, operational(fmt.Errorf("--dir: %w", err))
		}
		return s.prefixed(chain.NewDirStore(s.dir)), opts, nil
	}
	st, err := auditstore.Open(ctx, cfg.S3)
	if err != nil {
		return nil, nil, operational(err)
	}
	return s.prefixed(st), opts, nil
}

// prefixed is st under --prefix, or st.
func (s *chainSource) prefixed(st chain.Store) chain.Store {
	if s.prefix == "" {
		return st
	}
	return chain.Prefixed(st, s.prefix)
}

// progressPrinter reports verification progress on stderr, one line per
// partition (redrawn in place on a terminal).
func progressPrinter(w io.Writer, tty bool) func(chain.Progress) {
	last := time.Time{}
	lastPart := int32(-1)
	return func(p chain.Progress) {
		done := p.Sequence+1 == p.Of
		if !done && p.Partition == lastPart && time.Since(last) < 500*time.Millisecond {
			return
		}
		last, lastPart = time.Now(), p.Partition
		line := fmt.Sprintf("partition %d: manifest %d/%d, %d records", p.Partition, p.Sequence+1, p.Of, p.Records)
		switch {
		case tty && done:
			fmt.Fprintf(w, "\r\033[K%s\n", line)
		case tty:
			fmt.Fprintf(w, "\r\033[K%s", line)
		case done:
			fmt.Fprintln(w, line)
		}
	}
}

// newVerifyCmd builds `pcistream verify`.
func newVerifyCmd(cfg *config.Config) *cobra.Command {
	var (
		src        chainSource
		format     string
		noRet      bool
		partition  []int32
		quiet      bool
		allowEmpty bool
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Verify the audit trail in S3: hashes, Merkle roots, links, signatures, retention",
		Long: `verify walks every partition's chain of manifests and checks, for each batch, the object's
SHA-256 (read by the version id pinned in the manifest), its record count and offsets, the
RFC 9162 Merkle root of its records, the link to the previous manifest, sequence and offset
continuity, and the partition-wide tree. It checks that every object has COMPLIANCE retention
still in force, that no later version or delete marker was written over a chained key, and
that every signed checkpoint verifies, links to the previous one, never shrinks a partition's
tree, and matches the chain (no fork, no truncation).

Trust comes only from what you pin: every manifest and checkpoint must be signed by a key
given with --public-key or --trust-file (PCISTREAM_PUBLIC_KEY, PCISTREAM_TRUST_FILE, or the
config file). Keys published in the bucket are listed, never trusted, unless
--insecure-trust-bucket-keys says so. When a key has several versions, the version read is
the one the chain itself vouches for (pinned version id, valid signature), never the newest
by timestamp.

Checkpoints held outside the bucket anchor it: the newest one found in the Kafka topic
--topic-audit-checkpoints (written by the auditor) and in --checkpoint files must be in the
bucket byte for byte, and every chain must reach the heads it signs, so removing the newest
batches together with the newest checkpoints is caught. verify also reads the committed
offsets of the audit topic from Kafka: an offset gap in the trail that Kafka's transaction
markers or aborted records do not explain, or a chained record Kafka never committed, is a
defect. An audit event id archived twice is a defect. --no-kafka skips Kafka (offline).

Exit status: 0 the trail verifies; 1 it has defects, or is empty (no manifest, no
checkpoint) without --allow-empty; 2 it could not be checked (S3 or Kafka unreachable,
bad flags, no trusted key).

It prints a per-partition report (or JSON with --format json).`,
		Example: `  pcistream verify --public-key audit-signing.pub.pem
  pcistream audit checkpoint --public-key audit-signing.pub.pem --out anchor-$(date +%F).json  # keep it off the bucket
  pcistream verify --public-key audit-signing.pub.pem --checkpoint anchor-2026-11-01.json
  pcistream verify --trust-file trusted-keys.pem --format json > verify.json
  pcistream verify --dir ./audit-copy --public-key audit-signing.pub.pem --no-kafka`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if format != "text" && format != "json" {
				return operational(fmt.Errorf("--format %q: want text or json", format))
			}
			store, opts, err := src.open(ctx, cfg)
			if err != nil {
				return err
			}
			if !quiet {
				opts = append(opts, chain.OnProgress(progressPrinter(cmd.ErrOrStderr(), stderrIsTerminal())))
			}
			if noRet {
				opts = append(opts, chain.CheckRetention(false))
			}
			if len(partition) > 0 {
				opts = append(opts, chain.OnlyPartitions(partition...))
			}
			rep, err := chain.Verify(ctx, store, opts...)
			if err != nil {
				return operational(fmt.Errorf("verify: %w: check --s3-endpoint, --s3-bucket, credentials and --kafka-brokers", err))
			}
			// Defects quote keys and contents an attacker may have
			// written: the report is masked like every log line.
			var buf bytes.Buffer
			if format == "json" {
				enc := json.NewEncoder(&buf)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return operational(err)
				}
			} else {
				printReport(&buf, rep)
			}
			masked, _ := pan.New().Mask(nil, buf.Bytes(), pan.First6Last4)
			if _, err := cmd.OutOrStdout().Write(masked); err != nil {
				return operational(err)
			}
			if !rep.OK() {
				return defective("audit trail FAILED verification: %d defect(s)", len(rep.Defects))
			}
			if rep.Empty() && !allowEmpty {
				return defective("no audit trail found (no manifest, no checkpoint under %s): check --s3-bucket or --dir, or pass --allow-empty if the trail is new", chain.Root)
			}
			return nil
		},
	}
	src.bind(cmd)
	cmd.Flags().StringVar(&format, "format", "text", "output: text or json")
	cmd.Flags().BoolVar(&noRet, "no-retention", false, "skip the Object Lock retention check")
	cmd.Flags().Int32SliceVar(&partition, "partition", nil, "verify only these partitions")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress on stderr")
	cmd.Flags().BoolVar(&allowEmpty, "allow-empty", false, "exit 0 on an empty trail (a new deployment) instead of 1")
	return cmd
}

func printReport(w io.Writer, rep *chain.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tMANIFESTS\tRECORDS\tOFFSETS\tGAPS\tSIGNED\tTREE ROOT\tSTATUS")
	for _, p := range rep.Partitions {
		status := "ok"
		if p.Defects > 0 {
			status = fmt.Sprintf("%d DEFECT(S)", p.Defects)
		}
		root := p.TreeRoot
		if len(root) > 16 {
			root = root[:16]
		}
		gaps := fmt.Sprintf("%d", p.Gaps)
		switch {
		case p.Gaps > 0 && !p.GapsChecked:
			gaps += " (unchecked)"
		case p.UncheckedGaps > 0:
			gaps += fmt.Sprintf(" (%d unchecked)", p.UncheckedGaps)
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d..%d\t%s\t%d/%d\t%s\t%s\n", p.Partition, p.Manifests, p.Records, p.FirstOffset, p.LastOffset, gaps, p.SignedTreeSize, p.TreeSize, root, status)
	}
	tw.Flush()
	fmt.Fprintf(w, "trusted keys: %s\n", strings.Join(rep.TrustedKeys, ", "))
	if a := rep.NewestAnchor; a != nil {
		fmt.Fprintf(w, "newest anchor outside the bucket: checkpoint #%d at %s\n", a.Sequence, a.Time.Format(time.RFC3339))
	} else {
		fmt.Fprintln(w, "anchors outside the bucket: none (truncation of the newest checkpoints cannot be detected: keep 'pcistream audit checkpoint' files, or let verify read Kafka)")
	}
	if c := rep.LatestCheckpoint; c != nil {
		fmt.Fprintf(w, "checkpoints: %d, latest #%d at %s signed by key %s\n", rep.Checkpoints, c.Sequence, c.Time.Format(time.RFC3339), c.KeyID)
	} else {
		fmt.Fprintln(w, "checkpoints: none")
	}
	for _, wn := range rep.Warnings {
		fmt.Fprintln(w, "warning:", wn)
	}
	for _, d := range rep.Defects {
		where := ""
		if d.Partition >= 0 {
			where = fmt.Sprintf("partition %d: ", d.Partition)
		}
		fmt.Fprintf(w, "DEFECT %s%s\n", where, d)
	}
	switch {
	case rep.OK() && rep.Empty():
		fmt.Fprintln(w, "result: EMPTY, no audit trail found")
	case rep.OK():
		fmt.Fprintln(w, "result: OK, the audit trail verifies")
	default:
		fmt.Fprintf(w, "result: FAILED, %d defect(s)\n", len(rep.Defects))
	}
}
