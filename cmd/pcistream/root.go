package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/logmask"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/telemetry"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newRootCmd() *cobra.Command {
	cfg := config.Default()
	root := &cobra.Command{
		Use:   "pcistream",
		Short: "Keep payment card data out of your Kafka estate",
		Long: `pcistream tokenizes card numbers and masks them in logs with exactly-once semantics,
republishes sanitized events, archives a hash-chained, object-locked audit trail in S3,
and scans Kafka, S3, PostgreSQL and files for leaked PANs.

Every flag can also be set with an environment variable PCISTREAM_<FLAG_NAME>
(e.g. --s3-endpoint is PCISTREAM_S3_ENDPOINT) or a key in the YAML file given by
--config; flags win over the environment, which wins over the file.

Defaults point at the embedded development stack: start it with 'pcistream dev',
or see everything work at once with 'pcistream demo'.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.Resolve(cmd.Flags(), nil); err != nil {
				return err
			}
			// The embedded S3 gateway changes the working directory;
			// pin relative paths now.
			if cfg.Keyring != "" && !strings.HasPrefix(strings.TrimSpace(cfg.Keyring), "{") {
				if abs, err := filepath.Abs(cfg.Keyring); err == nil {
					cfg.Keyring = abs
				}
			}
			return nil
		},
	}
	config.BindFlags(root.PersistentFlags(), &cfg)
	addDevCommands(root, &cfg)
	root.AddCommand(
		newRunCmd(&cfg),
		newTopologyCmd(&cfg),
		newSchemasCmd(&cfg),
		newKeysCmd(&cfg),
		newMaskCmd(),
		newScanCmd(&cfg),
		newHealthcheckCmd(),
	)
	addExtraCommands(root, &cfg)
	setUsage(root)
	requireSubcommands(root)
	return root
}

// usageErr marks err as a usage error (exit 2).
func usageErr(err error) error { return usageError{err} }

// requireSubcommands makes every command that only groups subcommands
// (run, keys, audit, ...) reject a missing or unknown subcommand with exit
// code 2; cobra would print the help and exit 0, so `pcistream run tokenise`
// looked like success.
func requireSubcommands(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		requireSubcommands(c)
	}
	if !cmd.HasSubCommands() || cmd.Runnable() {
		return
	}
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		names := []string{}
		for _, sc := range c.Commands() {
			if sc.IsAvailableCommand() {
				names = append(names, sc.Name())
			}
		}
		if len(args) == 0 {
			return usageErr(fmt.Errorf("%s needs a subcommand: %s (see '%s --help')", c.CommandPath(), strings.Join(names, ", "), c.CommandPath()))
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if c.SuggestionsMinimumDistance <= 0 {
			c.SuggestionsMinimumDistance = 2
		}
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(": did you mean %s?", strings.Join(s, " or "))
		} else {
			msg += ": choose " + strings.Join(names, ", ")
		}
		return usageErr(errors.New(msg))
	}
}

// newLogger returns pcistream's logger: every message and attribute goes
// through the PAN-masking handler, so no log line can carry a card number.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if strings.EqualFold(cfg.LogFormat, "json") {
		h = slog.NewJSONHandler(w, hopts)
	} else {
		h = slog.NewTextHandler(w, hopts)
	}
	return slog.New(logmask.NewHandler(h, pan.New()))
}

// worker is what `pcistream run X` runs: a blocking loop with a readiness
// check.
type worker interface {
	Run(ctx context.Context) error
	Ready() error
}

// runWorker serves metrics and health while w runs, and stops both when ctx
// is done or w returns.
func runWorker(ctx context.Context, cfg *config.Config, reg *telemetry.Registry, name string, w worker, log *slog.Logger) error {
	if s, ok := w.(interface{ Status() (string, error) }); ok {
		reg.AddStatus(name, s.Status)
	} else {
		reg.AddReadiness(name, w.Ready)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srvErr := make(chan error, 1)
	go func() { srvErr <- reg.Serve(ctx, cfg.MetricsAddr, log) }()
	err := w.Run(ctx)
	cancel()
	if serr := <-srvErr; err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	log.Info("stopped cleanly")
	return nil
}

// newRunCmd builds `pcistream run`, the parent of the processors.
func newRunCmd(cfg *config.Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run a processor (tokenizer, masker, auditor) until interrupted",
		Long: `Run one pcistream processor in the foreground. Each serves Prometheus metrics,
/healthz and /readyz on --metrics-addr, and on SIGINT or SIGTERM finishes or aborts
its open transaction before it exits.`,
	}
	addRunCommands(cmd, cfg)
	return cmd
}

var _ prometheus.Registerer = (*telemetry.Registry)(nil)

// stderrIsTerminal reports whether progress lines may redraw in place.
func stderrIsTerminal() bool {
	fi, err := os.Stderr.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
