package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/internal/opaudit"
	"github.com/pcistream/pcistream/schemas"
	"github.com/pcistream/pcistream/topology"
)

// topologyFlags are the flags shared by `topology diff` and `topology apply`.
type topologyFlags struct {
	file              string
	replicationFactor int16
	partitions        int32
	timeout           time.Duration
}

func (f *topologyFlags) bind(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVarP(&f.file, "file", "f", "", "topology spec YAML (default: the built-in spec, see `pcistream topology show`)")
	fs.Int16Var(&f.replicationFactor, "replication-factor", 0, "override every topic's replication factor (0: as in the spec); also sets min.insync.replicas (2 from RF 3 up, else 1)")
	fs.Int32Var(&f.partitions, "partitions", 0, "override every topic's partition count (0: as in the spec)")
	fs.DurationVar(&f.timeout, "timeout", 60*time.Second, "give up after this long")
}

// spec loads the spec the flags ask for, with topic names from cfg.
func (f *topologyFlags) spec(cfg *config.Config) (topology.Spec, error) {
	var (
		s   topology.Spec
		err error
	)
	if f.file != "" {
		s, err = topology.LoadNamed(f.file, cfg.Topics)
	} else {
		s, err = topology.Default(cfg.Topics)
	}
	if err != nil {
		return topology.Spec{}, err
	}
	if f.replicationFactor < 0 || f.partitions < 0 {
		return topology.Spec{}, errors.New("--replication-factor and --partitions must be positive (or 0 to keep the spec's)")
	}
	if f.replicationFactor > 0 {
		s = s.WithReplicationFactor(f.replicationFactor)
	}
	if f.partitions > 0 {
		s = s.WithPartitions(f.partitions)
	}
	if err := s.Validate(); err != nil {
		return topology.Spec{}, err
	}
	return s, nil
}

// topologyAdmin connects an admin client to the configured cluster.
func topologyAdmin(cfg *config.Config) (*kadm.Client, func(), error) {
	opts, err := kafkax.Opts(cfg.Kafka)
	if err != nil {
		return nil, nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	return kadm.NewClient(cl), cl.Close, nil
}

// run resolves the spec and connects an admin client for fn, which runs
// within --timeout.
func (f *topologyFlags) run(cmd *cobra.Command, cfg *config.Config, fn func(context.Context, *kadm.Client, topology.Spec) error) error {
	s, err := f.spec(cfg)
	if err != nil {
		return err
	}
	adm, closeFn, err := topologyAdmin(cfg)
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	return fn(ctx, adm, s)
}

// newTopologyCmd builds `pcistream topology` with its diff, apply and show
// subcommands. cfg is resolved by the root command before any RunE runs.
func newTopologyCmd(cfg *config.Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topology",
		Short: "Declare and reconcile pcistream's Kafka topics and ACLs",
		Long: `The topology spec declares every topic pcistream uses: partitions, replication
factor, cleanup policy, retention, min.insync.replicas and optional ACLs.
Topic names follow the --topic-* flags. "diff" shows what differs from the
cluster, "apply" shows the same diff and then creates or alters topics.
Apply only adds: it never deletes a topic or an ACL and never shrinks a topic;
such differences are reported as conflicts (!) and make apply exit non-zero.`,
	}
	cmd.AddCommand(newTopologyDiffCmd(cfg), newTopologyApplyCmd(cfg), newTopologyShowCmd())
	return cmd
}

func newTopologyDiffCmd(cfg *config.Config) *cobra.Command {
	var f topologyFlags
	cmd := &cobra.Command{
		Use:   "diff",
		Short: "Show how the cluster differs from the topology spec (changes nothing)",
		Example: `  pcistream topology diff
  pcistream topology diff --file deploy/topics.prod.yaml --brokers kafka-0:9092`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, cfg, func(ctx context.Context, adm *kadm.Client, s topology.Spec) error {
				changes, err := topology.Diff(ctx, adm, s)
				if err != nil {
					return err
				}
				topology.Print(cmd.OutOrStdout(), changes)
				return nil
			})
		},
	}
	f.bind(cmd)
	return cmd
}

func newTopologyApplyCmd(cfg *config.Config) *cobra.Command {
	var (
		f      topologyFlags
		dryRun bool
		reason string
	)
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Create or alter topics and ACLs to match the topology spec",
		Long: `Apply prints the diff against the cluster, then creates missing topics and
ACLs, sets drifted configs and raises partition counts. Running it again is a
no-op. Conflicts (a topic with more partitions or another replication factor
than declared) are never changed and make the command exit non-zero after
everything else was applied.

An apply that changed something is an audit event (action topology_apply, the Kafka
principal as actor, --reason, the topics created and altered), written after the
change. On a fresh cluster the audit schema is not registered yet (bootstrap): the
command then says so in one line and exits 0; run 'schemas register' next.`,
		Example: `  pcistream topology apply --reason "initial setup"
  pcistream topology apply --dry-run
  pcistream topology apply --replication-factor 3 --brokers kafka-0:9092,kafka-1:9092 --reason "CHG-7 RF 3"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !dryRun && strings.TrimSpace(reason) == "" {
				return usageError{errors.New("topology apply needs --reason (or --dry-run): the change is recorded in the audit trail")}
			}
			return f.run(cmd, cfg, func(ctx context.Context, adm *kadm.Client, s topology.Spec) error {
				plan, err := topology.Diff(ctx, adm, s)
				if err != nil {
					return err
				}
				out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
				topology.Print(out, plan)
				if dryRun {
					fmt.Fprintln(errOut, "Dry run: nothing changed.")
					return conflictErr(plan)
				}
				if !topology.Pending(plan) {
					if err := conflictErr(plan); err != nil {
						fmt.Fprintln(errOut, "Nothing applied.")
						return err
					}
					fmt.Fprintln(errOut, "Nothing to apply: the cluster matches the spec.")
					return nil
				}
				fmt.Fprintln(errOut, "Applying...")
				changes, err := topology.Apply(ctx, adm, s)
				if err != nil && !errors.Is(err, topology.ErrConflict) {
					return fmt.Errorf("topology apply: %w", err)
				}
				fmt.Fprintf(errOut, "Applied: %d created, %d changed.\n",
					topology.Count(changes, topology.KindCreate)+topology.Count(changes, topology.KindCreateACL),
					topology.Count(changes, topology.KindAlterConfig)+topology.Count(changes, topology.KindAddPartitions))
				if err := auditTopology(cmd, cfg, reason, changes); err != nil {
					return err
				}
				return conflictErr(changes)
			})
		},
	}
	f.bind(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show the diff only; change nothing")
	cmd.Flags().StringVar(&reason, "reason", "", "why the topology is changed, for the audit event (required unless --dry-run)")
	return cmd
}

// auditTopology records an applied change: topics created and altered.
func auditTopology(cmd *cobra.Command, cfg *config.Config, reason string, changes []topology.Change) error {
	byKind := map[string][]string{}
	for _, c := range changes {
		if c.Kind != topology.KindConflict {
			byKind[c.Kind] = append(byKind[c.Kind], c.Topic)
		}
	}
	ev := schemas.AuditEvent{Action: "topology_apply", Outcome: "ok", Subject: "topology", Attrs: map[string]string{}}
	for k, topics := range byKind {
		ev.Attrs[k] = strings.Join(topics, ",")
	}
	return auditAfterChange(cmd, cfg, reason, &ev)
}

// auditAfterChange writes ev for a change already made. On a fresh cluster
// (no audit topic or schema yet) that is not an error: one line says so.
func auditAfterChange(cmd *cobra.Command, cfg *config.Config, reason string, ev *schemas.AuditEvent) error {
	err := opaudit.Operator(cmd.Context(), cfg, reason, ev)
	if errors.Is(err, opaudit.ErrBootstrap) {
		fmt.Fprintf(cmd.ErrOrStderr(), "Not audited: %s (bootstrap; later changes are audited once `topology apply` and `schemas register` have run).\n", opaudit.ErrBootstrap)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s was done, but recording it in the audit trail failed: %w", ev.Action, err)
	}
	return nil
}

// conflictErr turns conflicts into the command's error so scripts notice.
func conflictErr(changes []topology.Change) error {
	if n := topology.Count(changes, topology.KindConflict); n > 0 {
		return fmt.Errorf("%d topology conflict(s) (lines marked !): fix them by hand or change the spec (--file, --partitions, --replication-factor)", n)
	}
	return nil
}

func newTopologyShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Print the built-in topology spec (a starting point for --file)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(topology.DefaultYAML())
			return err
		},
	}
}
