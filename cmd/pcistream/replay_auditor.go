package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/auditstore"
	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/internal/opaudit"
	"github.com/pcistream/pcistream/internal/replay"
	"github.com/pcistream/pcistream/processors/auditor"
	"github.com/pcistream/pcistream/schemas"
)

// replayAuditorFlags configure a re-archive.
type replayAuditorFlags struct {
	prefix        string
	signingKey    string
	signingKMSKey string
	batchRecords  int
	batchBytes    int
	retention     time.Duration
}

func newReplayAuditorCmd(cfg *config.Config) *cobra.Command {
	var (
		f  replayFlags
		af replayAuditorFlags
	)
	cmd := &cobra.Command{
		Use:   "auditor",
		Short: "Re-archive a range of the audit topic into a separate S3 prefix, verifiable on its own",
		Long: `Archives a range of the audit events topic again, as the auditor does (masked events,
object-locked batches, signed hash-chained manifests, a final signed checkpoint), under
--prefix (default replays/<job>/) in the audit bucket: a trail of its own, beside the
live one under audit/v1/, which it never touches. Check it with
'pcistream verify --prefix <prefix> --public-key K': its own heads, manifests and
checkpoint, and (with Kafka reachable) that every record of its span is a committed
record, with no gap inside the span.

Exactly once and resumable like the auditor: the chain head of each partition in the
prefix is the position, so a re-run of an interrupted job continues after it (adopting
a batch object written without its manifest) and a finished job writes nothing again.
Sign with the live trail's key (--signing-key or --signing-kms-key-id).`,
		Example: `  pcistream replay auditor --from-time 2026-11-28T14:00:00Z --to-time 2026-11-28T15:00:00Z --signing-key audit-signing.pem --reason "INC-44 re-archive for the assessor"
  pcistream verify --prefix replays/<job>/ --public-key audit-signing.pub.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReplayAuditor(cmd, cfg, &f, &af)
		},
	}
	f.bind(cmd)
	fl := cmd.Flags()
	fl.StringVar(&af.prefix, "prefix", "", "S3 key prefix of the re-archive, ending in / (default replays/<job>/); never audit/")
	fl.StringVar(&af.signingKey, "signing-key", "", "PEM Ed25519 private key that signs manifests and the checkpoint (the live auditor's)")
	fl.StringVar(&af.signingKMSKey, "signing-kms-key-id", "", "AWS KMS key that signs instead of --signing-key")
	fl.IntVar(&af.batchRecords, "batch-records", 10000, "records per batch at most")
	fl.IntVar(&af.batchBytes, "batch-bytes", 8<<20, "uncompressed bytes per batch at most")
	fl.DurationVar(&af.retention, "retention", auditstore.DefaultRetention, "Object Lock COMPLIANCE retention of every object")
	return cmd
}

func runReplayAuditor(cmd *cobra.Command, cfg *config.Config, f *replayFlags, af *replayAuditorFlags) error {
	ctx := cmd.Context()
	if strings.TrimSpace(f.reason) == "" {
		return usageError{errors.New("a replay needs --reason: it is recorded in the audit trail")}
	}
	r, err := f.rng(cfg.Topics.AuditEvents)
	if err != nil {
		return usageError{err}
	}
	job, _ := f.names("auditor")
	prefix := cmp.Or(af.prefix, chain.RearchiveRoot+job+"/")
	if !strings.HasSuffix(prefix, "/") || strings.HasPrefix(prefix, chain.Root) || strings.HasPrefix(chain.Root, prefix) || strings.HasPrefix(prefix, "/") {
		return usageError{fmt.Errorf("--prefix %q: give a relative prefix ending in / outside the live trail (%s), e.g. replays/%s/", prefix, chain.Root, job)}
	}
	signer, err := loadSigner(ctx, af.signingKey, af.signingKMSKey)
	if err != nil {
		return err
	}
	serde, kopts, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	actor, err := kafkax.Principal(cfg.Kafka)
	if err != nil {
		return err
	}
	bounds, err := replay.Bounds(ctx, kopts, r)
	if err != nil {
		return err
	}
	ev := schemas.AuditEvent{Time: time.Now().UnixMilli(), Actor: actor, Action: "replay", Outcome: "started",
		Topic: r.Topic, Subject: "auditor", Reason: f.reason,
		Attrs: map[string]string{"job": job, "prefix": prefix, "dry_run": fmt.Sprint(f.dryRun), "ranges": boundsText(bounds)}}
	if f.operator != "" {
		ev.Attrs["operator_claimed"] = f.operator
	}
	if err := opaudit.Write(ctx, kopts, serde, cfg.Topics.AuditEvents, &ev); err != nil {
		return fmt.Errorf("recording the replay in the audit trail (nothing replayed): %w", err)
	}
	out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
	fmt.Fprintf(errw, "job %s (trail under s3://%s/%s)\n", job, cfg.S3.Bucket, prefix)
	if f.dryRun {
		var n int64
		for _, b := range bounds {
			n += b[1] - b[0]
		}
		fmt.Fprintf(out, "would re-archive at most %d offsets of %s %s under %s (markers and aborted records are skipped)\n", n, r.Topic, boundsText(bounds), prefix)
		return nil
	}
	base, err := auditstore.Open(ctx, cfg.S3, auditstore.Retention(af.retention))
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	a, err := auditor.New(chain.Prefixed(base, prefix),
		auditor.Topic(cfg.Topics.AuditEvents),
		auditor.ClientOpts(kopts...),
		auditor.BatchLimits(af.batchRecords, af.batchBytes, time.Minute),
		auditor.Checkpoints(signer, time.Minute),
		auditor.Decoder(auditor.SerdeDecoder(ctx, serde)),
		auditor.WriterName("replay:"+job+"@"+host),
		auditor.Logger(newLogger(cfg, errw)),
	)
	if err != nil {
		return err
	}
	res, err := a.Rearchive(ctx, bounds, func(res auditor.RearchiveResult) {
		fmt.Fprintf(errw, "\rre-archived %d records in %d batches", res.Records, res.Batches)
	})
	fmt.Fprintln(errw)
	done := ev
	done.ID = "" // its own event, its own id (opaudit derives it)
	done.Time, done.Outcome = time.Now().UnixMilli(), "ok"
	if err != nil {
		done.Outcome = "error"
	}
	done.Attrs = map[string]string{"job": job, "prefix": prefix, "records": fmt.Sprint(res.Records), "batches": fmt.Sprint(res.Batches)}
	if aerr := opaudit.Write(ctx, kopts, serde, cfg.Topics.AuditEvents, &done); aerr != nil && err == nil {
		err = fmt.Errorf("recording the replay's outcome in the audit trail: %w", aerr)
	}
	if err != nil {
		return fmt.Errorf("replay auditor: %w (run the same command again to resume)", err)
	}
	if res.Records == 0 && len(res.Resumed) > 0 {
		fmt.Fprintf(out, "job %s already finished: nothing replayed, nothing written (trail under %s)\n", job, prefix)
		return nil
	}
	fmt.Fprintf(out, "re-archived %d records of %s %s in %d batches under %s\n", res.Records, r.Topic, boundsText(bounds), res.Batches, prefix)
	if len(res.Resumed) > 0 {
		fmt.Fprintf(out, "  resumed after the chain heads an earlier run left: %s\n", offsetsText(res.Resumed))
	}
	if res.Checkpoint != nil {
		fmt.Fprintf(out, "  signed checkpoint %d; check it with: pcistream verify --prefix %s --public-key <the signing key's .pub.pem>\n", res.Checkpoint.Sequence, prefix)
	}
	return nil
}

// boundsText renders ranges as "[p0 3..10) [p1 0..4)".
func boundsText(b map[int32][2]int64) string {
	parts := make([]int32, 0, len(b))
	for p := range b {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	s := make([]string, len(parts))
	for i, p := range parts {
		s[i] = fmt.Sprintf("[p%d %d..%d)", p, b[p][0], b[p][1])
	}
	return strings.Join(s, " ")
}
