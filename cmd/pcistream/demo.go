//go:build !nodev

package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/demo"
)

// newDemoCmd builds `pcistream demo`.
func newDemoCmd(cfg *config.Config) *cobra.Command {
	var (
		payments int
		timeout  time.Duration
		verbose  bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on the embedded stack with sample traffic and check the outcome",
		Long: `Start the embedded stack (random local ports, a temporary directory), apply the
topology and schemas, run the tokenizer, masker and auditor in process, send sample
traffic (valid payments on every card network, webhook retries, split payments, a refund
and a chargeback, invalid and malformed payments, logs with card numbers in text,
JSON, URLs, XML and headers, binary junk and an oversize record), then check:
exactly-once counts per topic, dead-lettering, the audit chain in object-locked S3,
and a leak scan of everything downstream. Exits 0 only when every check holds.
Needs nothing but Go: no Docker, no network.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, "pcistream demo")
			o := demo.Options{Out: out, Payments: payments, Timeout: timeout}
			if verbose {
				o.Log = newLogger(cfg, cmd.ErrOrStderr())
			}
			sum, err := demo.Run(cmd.Context(), o)
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			demo.Print(out, sum, config.DefaultTopics())
			if !sum.OK() {
				return fmt.Errorf("demo: some checks failed")
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&payments, "payments", 200, "distinct payments (and log lines with PANs) to send")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "give up after this long")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the processors' logs on stderr")
	return cmd
}
