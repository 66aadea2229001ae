package scan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/pan"
)

// Exit codes of `pcistream scan`.
const (
	ExitClean    = 0 // nothing found (or everything found is in the baseline)
	ExitFindings = 1 // at least one finding
	ExitError    = 2 // a target could not be scanned; the message says what to fix
)

// CLIOptions are the settings of `pcistream scan`.
type CLIOptions struct {
	// Config supplies Kafka (brokers, TLS, SASL) and S3 (endpoint, region,
	// credentials) settings.
	Config config.Config
	// Format is "table" (default), "json" or "sarif".
	Format string
	// Baseline is a baseline file whose findings are accepted.
	Baseline string
	// WriteBaseline writes every current finding to this file; the run then
	// exits 0 unless the scan itself failed.
	WriteBaseline string
	// RowLimit caps the rows scanned per PostgreSQL table (0: all).
	RowLimit int64
	// ExcludeSchemas replaces DefaultExcludeSchemas when non-nil.
	ExcludeSchemas []string
	// Schemas limits PostgreSQL scans to these schemas when non-empty.
	Schemas []string
	// KafkaIdleTimeout, when non-zero, replaces the default (see KafkaIdleTimeout).
	KafkaIdleTimeout time.Duration
	// Progress, when non-zero, prints progress to stderr at this interval.
	Progress time.Duration
	// Version is recorded in SARIF output.
	Version string
}

// RunCLI is `pcistream scan` as a function: it parses the targets, scans
// them with det, writes the report to stdout (progress and the summary to
// stderr) and returns the exit code. For ExitError it also returns a one-line
// error, PAN-masked, saying what to fix; the caller prints it.
func RunCLI(ctx context.Context, det *pan.Detector, o CLIOptions, args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 {
		return ExitError, errors.New("no targets: give one or more of kafka://HOST:PORT/TOPIC, s3://BUCKET/PREFIX, postgres://USER@HOST/DB, or a file or directory")
	}
	switch o.Format {
	case "", FormatTable, FormatJSON, FormatSARIF:
	default:
		return ExitError, fmt.Errorf("unknown --format %q: use table, json or sarif", o.Format)
	}
	targets, err := ParseTargets(args)
	if err != nil {
		return ExitError, err
	}
	var base *Baseline
	if o.Baseline != "" {
		if base, err = LoadBaseline(o.Baseline); err != nil {
			return ExitError, err
		}
	}
	opts := []Opt{Config(o.Config), RowLimit(o.RowLimit)}
	if o.ExcludeSchemas != nil {
		opts = append(opts, ExcludeSchemas(o.ExcludeSchemas...))
	}
	if len(o.Schemas) > 0 {
		opts = append(opts, Schemas(o.Schemas...))
	}
	if o.KafkaIdleTimeout > 0 {
		opts = append(opts, KafkaIdleTimeout(o.KafkaIdleTimeout))
	}
	if o.Progress > 0 {
		opts = append(opts, ProgressFunc(o.Progress, func(p Progress) {
			if p.Done {
				return
			}
			rate := 0.0
			if s := p.Elapsed.Seconds(); s > 0 {
				rate = float64(p.Bytes) / s
			}
			fmt.Fprintf(stderr, "scan: %s: %d items, %s, %s/s, %d findings\n", p.Target, p.Items, HumanBytes(p.Bytes), HumanBytes(int64(rate)), p.Findings)
		}))
	}
	// With --write-baseline every finding is collected (the new baseline
	// accepts them all); --baseline is then applied to what is shown.
	if base != nil && o.WriteBaseline == "" {
		opts = append(opts, WithBaseline(base))
	}
	var all []Finding
	sum, scanErr := New(det, opts...).Scan(ctx, targets, func(f Finding) { all = append(all, f) })

	shown := all
	if o.WriteBaseline != "" {
		if scanErr == nil {
			if err := NewBaseline(all).WriteFile(o.WriteBaseline); err != nil {
				return ExitError, err
			}
		}
		if base != nil {
			shown = shown[:0:0]
			for _, f := range all {
				if base.Contains(f.Fingerprint) {
					sum.Suppressed++
					sum.ByKind[f.Kind]--
					continue
				}
				shown = append(shown, f)
			}
			sum.Findings = len(shown)
		}
	}
	if err := WriteReport(stdout, o.Format, shown, sum, o.Version); err != nil {
		return ExitError, fmt.Errorf("writing report: %w", err)
	}
	if o.Format == FormatJSON || o.Format == FormatSARIF {
		fmt.Fprintln(stderr, "scan: "+SummaryLine(sum))
	}
	for _, w := range sum.Warnings {
		fmt.Fprintln(stderr, "scan: warning: "+w)
	}
	switch {
	case scanErr != nil:
		return ExitError, scanErr
	case o.WriteBaseline != "":
		fmt.Fprintf(stderr, "scan: wrote %d finding(s) to baseline %s\n", len(all), o.WriteBaseline)
		return ExitClean, nil
	case len(shown) > 0:
		return ExitFindings, nil
	}
	return ExitClean, nil
}
