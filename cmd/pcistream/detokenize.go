package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/processors/tokenizer"
)

// newDetokenizeCmd builds `pcistream detokenize`: the one authorised path from
// token back to PAN, and the one place a PAN is printed (to stdout, for the
// operator). It refuses without the keyring's key-encryption key and a
// reason, and writes the audit event before it reveals anything.
func newDetokenizeCmd(cfg *config.Config) *cobra.Command {
	var (
		kf       kmsFlags
		tok      string
		reason   string
		operator string
		indexDir string
	)
	cmd := &cobra.Command{
		Use:   "detokenize --token TOKEN --reason WHY",
		Short: "Reveal the PAN behind a token (audited; needs the keyring and a reason)",
		Long: `Reads the token's entry from the vault topic (through a local index of it, see
--vault-index-dir), unwraps its data key with the keyring's
key-encryption key (or the KMS), decrypts the PAN and prints it on stdout, nothing else.

Every use is written to the audit topic (action detokenize, actor: the Kafka principal
this command authenticates as (SASL user or TLS certificate subject),
the reason, the token, the outcome) before the PAN is shown; if that write fails,
nothing is shown. Access control is the keyring itself: without the KEK (file mode 0600,
or KMS permissions) there is nothing to decrypt with.

Exit status: 0 with the PAN printed; 3 when the token's key version was retired
(pcistream keys retire deleted its vault entries: a definite answer, not an error to
retry); 2 for every other failure.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if tok == "" {
				return errors.New("detokenize: --token is required")
			}
			if _, err := token.ParseToken(tok); err != nil {
				return fmt.Errorf("--token: %w", err)
			}
			if len(strings.TrimSpace(reason)) < tokenizer.MinReasonLen {
				return fmt.Errorf("%w: --reason must say why (at least %d characters, e.g. a ticket id)", tokenizer.ErrRefused, tokenizer.MinReasonLen)
			}
			actor, err := kafkax.Principal(cfg.Kafka)
			if err != nil {
				return err
			}
			_, vault, err := openKeyring(ctx, cfg, &kf)
			if err != nil {
				return fmt.Errorf("%w: %w", tokenizer.ErrRefused, err)
			}
			serde, clientOpts, err := connect(ctx, cfg)
			if err != nil {
				return err
			}
			d := tokenizer.NewDetokenizer(vault, serde, cfg.Topics, clientOpts)
			if indexDir != "" {
				ix, err := tokenizer.OpenVaultIndex(ctx, indexDir, clientOpts, cfg.Topics.Vault, 0)
				if err != nil {
					return fmt.Errorf("detokenize: %w", err)
				}
				defer ix.Close()
				d.UseIndex(ix)
			}
			pan, err := d.Detokenize(ctx, tokenizer.DetokenizeRequest{Token: tok, Reason: reason, Actor: actor, Operator: operator})
			if err != nil {
				// Detokenize's errors say "detokenize refused: ..." or
				// name the step that failed; no second prefix.
				var re *tokenizer.RetiredError
				if errors.As(err, &re) {
					return retiredExit{err}
				}
				return err
			}
			defer clear(pan)
			out := append(pan, '\n')
			_, err = cmd.OutOrStdout().Write(out)
			clear(out)
			return err
		},
	}
	kf.bind(cmd)
	fl := cmd.Flags()
	fl.StringVar(&tok, "token", "", "the token to reveal (tok_v<N>_...)")
	fl.StringVar(&reason, "reason", "", "why (recorded in the audit trail; at least 8 characters, e.g. a ticket id)")
	fl.StringVar(&operator, "operator", "", "a name recorded beside the actor, which is the Kafka principal (SASL user or TLS certificate subject)")
	fl.StringVar(&indexDir, "vault-index-dir", "", "local index of the vault (Pebble; encrypted entries, same controls as the vault): kept, later lookups read one key plus what was written since (default: a temporary index of the token's partition)")
	return cmd
}
