package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/auditstore"
	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/s3x"
	"github.com/pcistream/pcistream/internal/telemetry"
	"github.com/pcistream/pcistream/processors/auditor"
	"github.com/pcistream/pcistream/schemas"
)

// auditorFlags are the flags of `pcistream run auditor`.
type auditorFlags struct {
	group           string
	batchRecords    int
	batchBytes      int
	batchAge        time.Duration
	retention       time.Duration
	signingKey      string
	signingKMSKey   string
	checkpointEvery time.Duration
	policy          pan.Policy
	inputFormat     string
	writerName      string
	previousKeys    []string
	noAnchor        bool
}

// newRunAuditorCmd builds `pcistream run auditor`.
func newRunAuditorCmd(cfg *config.Config) *cobra.Command {
	f := auditorFlags{policy: pan.Last4}
	cmd := &cobra.Command{
		Use:   "auditor",
		Short: "Archive audit.events into an object-locked, hash-chained trail in S3",
		Long: `The auditor consumes the audit events topic (read_committed) and writes, per partition,
gzip JSON Lines batches to S3 with Object Lock COMPLIANCE retention and a SHA-256 checksum,
plus a manifest per batch that links to the previous one (conditional puts: a second writer
cannot fork the chain). Every --checkpoint-interval it signs the heads of all partitions with
Ed25519. Offsets are committed only once a batch and its manifest are durable; on start the
position is recovered from the chain in S3. If S3 is unreachable the auditor stops committing,
retries with backoff and reports not ready on /readyz; Kafka keeps the data.

Every manifest is signed with the same key. On start the auditor resumes only from a head
it signed (or one signed by a --previous-public-key), whose records match what Kafka still
holds at those offsets, and only if the bucket still holds the newest checkpoint anchored in
the compacted Kafka topic --topic-audit-checkpoints (each checkpoint is also written there).
Anything else is a tamper alarm: it logs "TAMPER ALARM", counts
pcistream_audit_tamper_alarms_total, stays up not ready for a minute and exits non-zero,
without skipping or adopting a record.

It refuses to start against a bucket without Object Lock. Anything PAN-like in an event is
masked before it is written. Check the result with 'pcistream verify'.

Metrics: pcistream_audit_write_failures_total, pcistream_s3_write_seconds{op},
pcistream_audit_chain_head{partition}, pcistream_audit_records_total.`,
		Example: `  pcistream audit keygen --out audit-signing.pem
  pcistream run auditor --signing-key audit-signing.pem --retention 8760h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runAuditor(ctx, cfg, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.group, "group", "pcistream-auditor", "consumer group")
	fl.IntVar(&f.batchRecords, "batch-records", 10000, "write a batch once it holds this many records")
	fl.IntVar(&f.batchBytes, "batch-bytes", 8<<20, "write a batch once its records reach this many (uncompressed) bytes")
	fl.DurationVar(&f.batchAge, "batch-age", 5*time.Second, "write a batch at the latest this long after its first record")
	fl.DurationVar(&f.retention, "retention", auditstore.DefaultRetention, "Object Lock COMPLIANCE retention of every object (PCI DSS 10.5.1: at least 12 months)")
	fl.StringVar(&f.signingKey, "signing-key", "", "PEM Ed25519 private key that signs checkpoints (create with 'pcistream audit keygen')")
	fl.StringVar(&f.signingKMSKey, "signing-kms-key-id", "", "AWS KMS key (spec ECC_NIST_EDWARDS25519) that signs checkpoints instead of --signing-key; credentials from the AWS default chain")
	fl.DurationVar(&f.checkpointEvery, "checkpoint-interval", time.Minute, "how often to sign all partition heads")
	fl.Var(&f.policy, "mask-policy", "how PAN-like values in events are masked: first6last4, last4 or full")
	fl.StringVar(&f.inputFormat, "input-format", "avro", "audit event encoding on the topic: avro (Confluent wire format) or json")
	fl.StringVar(&f.writerName, "writer-name", "", "name recorded in each manifest (default: the host name)")
	fl.StringSliceVar(&f.previousKeys, "previous-public-key", nil, "PEM public key of an earlier signing key whose manifests and checkpoints are still trusted after a key rotation (repeatable)")
	fl.BoolVar(&f.noAnchor, "no-checkpoint-anchor", false, "do not write checkpoints to the Kafka anchor topic (weakens truncation detection; for clusters where the topic cannot exist)")
	return cmd
}

func runAuditor(ctx context.Context, cfg *config.Config, f auditorFlags) error {
	log := newLogger(cfg, os.Stderr)
	signer, err := loadSigner(ctx, f.signingKey, f.signingKMSKey)
	if err != nil {
		return err
	}
	clientOpts, err := kafkax.Opts(cfg.Kafka)
	if err != nil {
		return fmt.Errorf("kafka options: %w", err)
	}
	var decode auditor.EventDecoder
	switch f.inputFormat {
	case "avro":
		serde, err := schemas.Open(ctx, cfg.Registry, cfg.Topics)
		if err != nil {
			return err
		}
		decode = auditor.SerdeDecoder(ctx, serde)
	case "json":
		decode = auditor.JSONDecoder
	default:
		return fmt.Errorf("--input-format %q: want avro or json", f.inputFormat)
	}
	store, err := auditstore.Open(ctx, cfg.S3, auditstore.Retention(f.retention))
	if err != nil {
		return err
	}
	if f.writerName == "" {
		f.writerName, _ = os.Hostname()
	}
	s3cl, err := s3x.NewClient(ctx, cfg.S3)
	if err != nil {
		return err
	}
	var previous []ed25519.PublicKey
	for _, p := range f.previousKeys {
		keys, err := chain.LoadPublicKeys(p)
		if err != nil {
			return fmt.Errorf("--previous-public-key: %w", err)
		}
		previous = append(previous, keys...)
	}
	anchorTopic := cfg.Topics.AuditCheckpoints
	if f.noAnchor {
		anchorTopic = ""
	}
	reg := telemetry.NewRegistry()
	reg.AddProbe("s3", s3x.BucketProbe(s3cl, cfg.S3))
	endpoint := cfg.S3.Endpoint
	if endpoint == "" {
		endpoint = "aws"
	}
	a, err := auditor.New(store,
		auditor.Topic(cfg.Topics.AuditEvents),
		auditor.Group(f.group),
		auditor.ClientOpts(clientOpts...),
		auditor.BatchLimits(f.batchRecords, f.batchBytes, f.batchAge),
		auditor.Checkpoints(signer, f.checkpointEvery),
		auditor.TrustedKeys(previous...),
		auditor.AnchorTopic(anchorTopic),
		auditor.Decoder(decode),
		auditor.MaskPolicy(f.policy),
		auditor.WriterName(f.writerName),
		auditor.Logger(log.With("s3_endpoint", endpoint)),
		auditor.Registerer(reg),
	)
	if err != nil {
		return err
	}
	log.Info("auditor starting", "topic", cfg.Topics.AuditEvents, "bucket", cfg.S3.Bucket, "endpoint", cfg.S3.Endpoint,
		"retention", f.retention.String(), "key_id", chain.KeyID(signer.Public()))
	return runWorker(ctx, cfg, reg, "auditor", a, log)
}

// loadSigner returns the audit trail's signer: a PEM Ed25519 key file, or an
// AWS KMS key.
func loadSigner(ctx context.Context, keyFile, kmsKey string) (chain.Signer, error) {
	var signer chain.Signer
	switch {
	case kmsKey != "" && keyFile != "":
		return nil, fmt.Errorf("set either --signing-key or --signing-kms-key-id, not both")
	case kmsKey != "":
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("AWS configuration for KMS: %w", err)
		}
		if signer, err = auditstore.NewKMSSigner(ctx, kms.NewFromConfig(awsCfg), kmsKey); err != nil {
			return nil, err
		}
	case keyFile != "":
		var err error
		if signer, err = chain.LoadSigner(keyFile); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("no checkpoint signing key: create one with 'pcistream audit keygen --out audit-signing.pem' and pass --signing-key audit-signing.pem (or PCISTREAM_SIGNING_KEY), or use --signing-kms-key-id")
	}
	return signer, nil
}
