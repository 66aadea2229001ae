package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/scan"
)

// scanExitError carries `pcistream scan`'s exit code (1 findings, 2 error)
// through cobra. main should exit with ExitCode() when an error has one, and
// print nothing more when Silent() is true (the report already said it).
type scanExitError struct {
	code int
	err  error
}

func (e *scanExitError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return "card numbers found"
}

// ExitCode is the process exit code.
func (e *scanExitError) ExitCode() int { return e.code }

// Silent reports whether the message adds nothing to the command's output.
func (e *scanExitError) Silent() bool { return e.err == nil }

func (e *scanExitError) Unwrap() error { return e.err }

// newScanCmd builds `pcistream scan`. cfg (Kafka TLS/SASL, S3 endpoint and
// credentials) is resolved by the root command before RunE runs.
func newScanCmd(cfg *config.Config) *cobra.Command {
	var (
		o        scan.CLIOptions
		quiet    bool
		excludes []string
	)
	cmd := &cobra.Command{
		Use:   "scan TARGET...",
		Short: "Find card numbers (PANs) in Kafka topics, S3 prefixes, PostgreSQL and files",
		Long: `Scan runs pcistream's PAN detector (the one the masker uses) over every target and
reports where card numbers are: topic/partition/offset, s3://bucket/key:line,
schema.table.column (primary key or ctid), file:line. It shows at most the card
network and the last four digits, never a full PAN.

Targets, any number in one run:
  kafka://HOST:PORT[,HOST:PORT]/TOPIC[?from=OFFSET|RFC3339&to=OFFSET|RFC3339]
      every partition, read_committed, up to the end offsets captured at start;
      kafka:///TOPIC uses --brokers; TLS and SASL come from the Kafka flags.
      Record values, keys and header values are scanned.
  s3://BUCKET[/PREFIX]
      every object under the prefix, gzip decompressed transparently;
      endpoint and credentials from the --s3-* flags.
  postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=...]
      every text, varchar, char, json, jsonb and bytea column (and arrays,
      domains, xml, citext) of every table and materialized view outside the
      excluded schemas. Also reports tables that hold PANs or are named like
      payment tables (card, pan, payment, cc_...) but have row-level security
      disabled.
  PATH
      a file or a directory (recursive), gzip aware.

Exit status: 0 clean, 1 findings, 2 error (the message says what to fix).
Use --write-baseline to accept today's findings and --baseline in CI so only
new findings fail the build.`,
		Example: `  pcistream scan kafka://127.0.0.1:9092/logs.sanitized s3://pcistream-audit/audit/ ./logs
  pcistream scan --format sarif postgres://scanner@db:5432/shop?sslmode=require > scan.sarif
  pcistream scan --write-baseline .pcistream-baseline.json ./data
  pcistream scan --baseline .pcistream-baseline.json ./data`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Config = *cfg
			o.Version = cmd.Root().Version
			if quiet {
				o.Progress = 0
			}
			if cmd.Flags().Changed("pg-exclude-schema") {
				o.ExcludeSchemas = append([]string{}, excludes...)
			}
			code, err := scan.RunCLI(cmd.Context(), pan.New(), o, args, cmd.OutOrStdout(), cmd.ErrOrStderr())
			if code == scan.ExitClean {
				return nil
			}
			// RunCLI's errors name the target ("scan kafka:///t: …") or
			// the flag; no second prefix.
			return &scanExitError{code: code, err: err}
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&o.Format, "format", "o", "table", "output format: table, json or sarif (SARIF 2.1.0, for code-scanning dashboards)")
	fs.StringVar(&o.Baseline, "baseline", "", "accept the findings listed in this baseline file (written by --write-baseline)")
	fs.StringVar(&o.WriteBaseline, "write-baseline", "", "write every current finding to this baseline file and exit 0 unless the scan failed")
	fs.Int64Var(&o.RowLimit, "pg-row-limit", 0, "scan at most this many rows per PostgreSQL table (0: all)")
	fs.StringSliceVar(&excludes, "pg-exclude-schema", scan.DefaultExcludeSchemas, "PostgreSQL schemas not scanned")
	fs.StringSliceVar(&o.Schemas, "pg-schema", nil, "scan only these PostgreSQL schemas (default: all not excluded)")
	fs.DurationVar(&o.KafkaIdleTimeout, "kafka-idle-timeout", 10*time.Second, "stop reading a Kafka partition that returns nothing for this long before its end offset (reported as a warning)")
	fs.DurationVar(&o.Progress, "progress", time.Second, "progress interval on stderr")
	fs.BoolVarP(&quiet, "quiet", "q", false, "no progress on stderr")
	return cmd
}
