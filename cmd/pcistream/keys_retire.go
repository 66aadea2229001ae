package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/opaudit"
	"github.com/pcistream/pcistream/processors/tokenizer"
	"github.com/pcistream/pcistream/schemas"
)

// exitRetired is detokenize's exit status for a token of a retired key
// version: a definite answer (the PAN was deleted on purpose), not an
// error to retry.
const exitRetired = 3

// retiredExit gives a RetiredError its exit status.
type retiredExit struct{ err error }

func (e retiredExit) Error() string { return e.err.Error() }
func (e retiredExit) Unwrap() error { return e.err }
func (retiredExit) ExitCode() int   { return exitRetired }

func newKeysRetireCmd(cfg *config.Config) *cobra.Command {
	var (
		kf       kmsFlags
		version  uint32
		reason   string
		indexDir string
	)
	cmd := &cobra.Command{
		Use:   "retire --key-version N --reason WHY",
		Short: "Retire a key version: delete its vault entries (tombstones on the vault topic); its tokens stop detokenizing",
		Long: `Retires key version N in the vault (see processors/tokenizer/VAULT.md, "Retention policy"):
  1. writes an audit event (action keys_retire, the Kafka principal as actor, --reason,
     the version) first: when it cannot be written, nothing is retired;
  2. writes a retirement record for the version to the vault topic: from then on
     detokenize answers "key version N was retired" (exit status 3) for its tokens;
  3. writes a tombstone for every vault entry of the version (a range scan of the vault
     index, --vault-index-dir), so compaction removes them from the topic and every
     vault index deletes them at its next catch-up.
The current version cannot be retired (the tokenizer still makes its tokens): rotate
first. Running it again deletes entries written since. Retiring deletes the data; destroy
the version's key material too (schedule the KMS key's deletion, or drop the version
from both keyrings' backups), so that no copy of the vault can be opened either.`,
		Example: `  pcistream keys retire --key-version 1 --reason "CHG-31 retention: v1 tokens older than 540 days"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if strings.TrimSpace(reason) == "" {
				return usageError{errors.New("keys retire needs --reason: the retirement is recorded in the audit trail")}
			}
			if version == 0 {
				return usageError{errors.New("keys retire needs --key-version N (see pcistream keys list)")}
			}
			kr, _, err := openKeyring(ctx, cfg, &kf)
			if err != nil {
				return err
			}
			if version == kr.Current() {
				return usageError{fmt.Errorf("keys retire: key version %d is current (tokenizers make its tokens); run pcistream keys rotate first", version)}
			}
			if version > kr.Current() {
				return usageError{fmt.Errorf("keys retire: the keyring has no key version %d (current is %d)", version, kr.Current())}
			}
			serde, clientOpts, err := connect(ctx, cfg)
			if err != nil {
				return err
			}
			ev := schemas.AuditEvent{Action: "keys_retire", Outcome: "ok", Subject: "key_version",
				Topic: cfg.Topics.Vault, Attrs: map[string]string{"key_version": fmt.Sprint(version)}}
			if err := opaudit.Operator(ctx, cfg, reason, &ev); err != nil {
				return fmt.Errorf("keys retire: recording the retirement in the audit trail failed, nothing retired: %w", err)
			}
			ix, err := tokenizer.OpenVaultIndex(ctx, indexDir, clientOpts, cfg.Topics.Vault, 0)
			if err != nil {
				return fmt.Errorf("keys retire: %w", err)
			}
			defer ix.Close()
			n, err := ix.Retire(ctx, serde, version, time.Now())
			if err != nil {
				return fmt.Errorf("keys retire: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "key version %d retired: %d vault entries deleted from %s (tombstones; compaction removes them); destroy the version's key material next\n", version, n, cfg.Topics.Vault)
			return nil
		},
	}
	kf.bind(cmd)
	fl := cmd.Flags()
	fl.Uint32Var(&version, "key-version", 0, "the key version to retire (not the current one)")
	fl.StringVar(&reason, "reason", "", "why, for the audit event (required)")
	fl.StringVar(&indexDir, "vault-index-dir", "", "the vault index to scan (default: a temporary one, built from the vault topic)")
	return cmd
}
