package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/auditstore"
	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/internal/config"
)

// chainSource says where a chain is read from: the configured bucket, or an
// offline copy on disk, and which public key is trusted.
type chainSource struct {
	dir       string
	publicKey string
}

func (s *chainSource) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.dir, "dir", "", "verify an offline copy of the bucket in this directory instead of S3 (e.g. made with 'aws s3 sync s3://BUCKET/audit/ DIR/audit/'); retention cannot be checked offline")
	cmd.Flags().StringVar(&s.publicKey, "public-key", "", "trusted PEM Ed25519 public key for checkpoint signatures (default: the keys published in the bucket, with a warning)")
}

func (s *chainSource) open(ctx context.Context, cfg *config.Config) (chain.Store, []chain.VerifyOpt, error) {
	var opts []chain.VerifyOpt
	if s.publicKey != "" {
		pub, err := chain.LoadPublicKey(s.publicKey)
		if err != nil {
			return nil, nil, fmt.Errorf("--public-key %s: %w", s.publicKey, err)
		}
		opts = append(opts, chain.TrustedKey(ed25519.PublicKey(pub)))
	}
	if s.dir != "" {
		if _, err := os.Stat(s.dir); err != nil {
			return nil, nil, fmt.Errorf("--dir: %w", err)
		}
		return chain.NewDirStore(s.dir), opts, nil
	}
	st, err := auditstore.Open(ctx, cfg.S3)
	if err != nil {
		return nil, nil, err
	}
	return st, opts, nil
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
		src       chainSource
		format    string
		noRet     bool
		partition []int32
		quiet     bool
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

It prints a per-partition report (or JSON with --format json) and exits non-zero on any defect.`,
		Example: `  pcistream verify --public-key audit-signing.pub.pem
  pcistream verify --format json > verify.json
  pcistream verify --dir ./audit-copy --public-key audit-signing.pub.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
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
				return fmt.Errorf("verify: %w (check --s3-endpoint, --s3-bucket and credentials)", err)
			}
			out := cmd.OutOrStdout()
			switch format {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			case "text":
				printReport(out, rep)
			default:
				return fmt.Errorf("--format %q: want text or json", format)
			}
			if !rep.OK() {
				return fmt.Errorf("audit trail FAILED verification: %d defect(s)", len(rep.Defects))
			}
			return nil
		},
	}
	src.bind(cmd)
	cmd.Flags().StringVar(&format, "format", "text", "output: text or json")
	cmd.Flags().BoolVar(&noRet, "no-retention", false, "skip the Object Lock retention check")
	cmd.Flags().Int32SliceVar(&partition, "partition", nil, "verify only these partitions")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress on stderr")
	return cmd
}

func printReport(w io.Writer, rep *chain.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tMANIFESTS\tRECORDS\tOFFSETS\tSIGNED\tTREE ROOT\tSTATUS")
	for _, p := range rep.Partitions {
		status := "ok"
		if p.Defects > 0 {
			status = fmt.Sprintf("%d DEFECT(S)", p.Defects)
		}
		root := p.TreeRoot
		if len(root) > 16 {
			root = root[:16]
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d..%d\t%d/%d\t%s\t%s\n", p.Partition, p.Manifests, p.Records, p.FirstOffset, p.LastOffset, p.SignedTreeSize, p.TreeSize, root, status)
	}
	tw.Flush()
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
	if rep.OK() {
		fmt.Fprintln(w, "result: OK, the audit trail verifies")
	} else {
		fmt.Fprintf(w, "result: FAILED, %d defect(s)\n", len(rep.Defects))
	}
}
