package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	var (
		timeout time.Duration
		reason  string
	)
	register := &cobra.Command{
		Use:   "register",
		Short: "Register every schema under <topic>-value with BACKWARD compatibility",
		Long: `Set BACKWARD compatibility on every pcistream subject and register the embedded
Avro schemas (schemas/*.avsc). Idempotent: unchanged schemas keep their ids. An
incompatible change is rejected by the registry, and the command exits non-zero.

A registration is an audit event (action schemas_register, the Kafka principal as
actor, --reason, each subject with its id and version), written after the registry
accepted the schemas. When the audit topic does not exist yet (a fresh cluster before
'topology apply'), the command says so in one line and exits 0.`,
		Example: `  pcistream schemas register --reason "initial setup"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(reason) == "" {
				return usageError{errors.New("schemas register needs --reason: the registration is recorded in the audit trail")}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			cl, err := schemas.NewClient(cfg.Registry)
			if err != nil {
				return err
			}
			regs, err := schemas.Register(ctx, cl, cfg.Topics)
			var ue *schemas.UnreachableError
			if err != nil && !errors.As(err, &ue) {
				return fmt.Errorf("%w (registry %s)", err, cfg.Registry.URL)
			}
			if err != nil {
				return err // names the registry and the fix already
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SUBJECT\tSCHEMA\tID\tVERSION")
			ev := schemas.AuditEvent{Action: "schemas_register", Outcome: "ok", Subject: "schemas", Attrs: map[string]string{}}
			for _, r := range regs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", r.Subject, r.File, r.ID, r.Version)
				ev.Attrs[r.Subject] = fmt.Sprintf("id=%d version=%d", r.ID, r.Version)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return auditAfterChange(cmd, cfg, reason, &ev)
		},
	}
	register.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	register.Flags().StringVar(&reason, "reason", "", "why the schemas are registered, for the audit event (required)")
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
