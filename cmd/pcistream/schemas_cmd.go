package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/schemas"
)

// newSchemasCmd builds `pcistream schemas` (register, show).
func newSchemasCmd(cfg *config.Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schemas",
		Short: "Register and show pcistream's Avro schemas",
	}
	var timeout time.Duration
	register := &cobra.Command{
		Use:   "register",
		Short: "Register every schema under <topic>-value with BACKWARD compatibility",
		Long: `Set BACKWARD compatibility on every pcistream subject and register the embedded
Avro schemas (schemas/*.avsc). Idempotent: unchanged schemas keep their ids. An
incompatible change is rejected by the registry, and the command exits non-zero.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			cl, err := schemas.NewClient(cfg.Registry)
			if err != nil {
				return err
			}
			regs, err := schemas.Register(ctx, cl, cfg.Topics)
			if err != nil {
				return fmt.Errorf("%w (is the registry at %s up? start `pcistream dev` or set --registry-url)", err, cfg.Registry.URL)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SUBJECT\tSCHEMA\tID\tVERSION")
			for _, r := range regs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", r.Subject, r.File, r.ID, r.Version)
			}
			return tw.Flush()
		},
	}
	register.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	show := &cobra.Command{
		Use:   "show [FILE]",
		Short: "Print the embedded schemas (or one of them)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			defs, err := schemas.Defs()
			if err != nil {
				return err
			}
			for _, d := range defs {
				if len(args) == 1 && args[0] != d.File {
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "# %s\n%s\n", d.File, d.Text)
			}
			return nil
		},
	}
	cmd.AddCommand(register, show)
	return cmd
}
