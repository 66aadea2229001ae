package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"text/tabwriter"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/token"
)

// kmsFlags select where key-encryption keys live: the keyring itself (local,
// the default) or AWS KMS.
type kmsFlags struct {
	kind  string // "" or "local", or "aws"
	keyID string // AWS KMS key id or ARN for new key versions
}

func (f *kmsFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.kind, "kms", "local", "where key-encryption keys live: local (in the keyring file) or aws (AWS KMS, credentials from the AWS default chain)")
	cmd.Flags().StringVar(&f.keyID, "kms-key-id", "", "AWS KMS key id or ARN that wraps new key versions (with --kms aws)")
}

// kms returns the configured KMS, or nil for local key-encryption keys.
func (f *kmsFlags) kms(ctx context.Context) (token.KMS, error) {
	switch f.kind {
	case "", "local":
		return nil, nil
	case "aws":
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("AWS configuration for KMS: %w", err)
		}
		return token.NewAWSKMS(kms.NewFromConfig(awsCfg)), nil
	default:
		return nil, fmt.Errorf("--kms %q: use local or aws", f.kind)
	}
}

// openKeyring loads the keyring named by --keyring (a path, or inline JSON
// through PCISTREAM_KEYRING) and returns it with a vault over it.
func openKeyring(ctx context.Context, cfg *config.Config, kf *kmsFlags, vaultOpts ...token.VaultOpt) (*token.Keyring, *token.Vault, error) {
	k, err := kf.kms(ctx)
	if err != nil {
		return nil, nil, err
	}
	var lopts []token.LoadOpt
	if k != nil {
		lopts = append(lopts, token.WithKMS(k))
		vaultOpts = append(vaultOpts, token.VaultKMS(k))
	}
	kr, err := token.Open(ctx, cfg.Keyring, lopts...)
	if err != nil {
		return nil, nil, err
	}
	return kr, token.NewVault(kr, vaultOpts...), nil
}

// newKeysCmd builds `pcistream keys` (init, rotate, list).
func newKeysCmd(cfg *config.Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the token keyring: HMAC token keys and key-encryption keys, by version",
		Long: `The keyring holds, per key version, the HMAC-SHA-256 key that makes tokens and the
key-encryption key (KEK) that wraps vault data keys, either locally or as an AWS KMS key.
It is a JSON file (--keyring, mode 0600 enforced). For development PCISTREAM_KEYRING may
hold the JSON itself. Rotation adds a version and makes it current; older versions stay,
so their tokens still detokenize.`,
	}
	cmd.AddCommand(newKeysInitCmd(cfg), newKeysRotateCmd(cfg), newKeysListCmd(cfg))
	return cmd
}

func newKeysInitCmd(cfg *config.Config) *cobra.Command {
	var (
		kf        kmsFlags
		ifMissing bool
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a new keyring file with key version 1 (refuses to overwrite)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := cfg.Keyring
			if path == "" || path[0] == '{' {
				return errors.New("keys init: --keyring must name a file to create")
			}
			if _, err := os.Stat(path); err == nil && ifMissing {
				fmt.Fprintf(cmd.ErrOrStderr(), "keyring %s exists; left as it is\n", path)
				return nil
			} else if err == nil {
				return fmt.Errorf("keys init: %s already exists; losing keys loses the vault, so it is never overwritten (use `pcistream keys rotate`)", path)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("keys init: %w", err)
			}
			kr, err := initKeyring(cmd.Context(), &kf)
			if err != nil {
				return err
			}
			if err := kr.Save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created keyring %s (mode 0600) with key version %d\n", path, kr.Current())
			return nil
		},
	}
	kf.bind(cmd)
	cmd.Flags().BoolVar(&ifMissing, "if-missing", false, "succeed without changes when the keyring exists (for idempotent setup jobs)")
	return cmd
}

func initKeyring(ctx context.Context, kf *kmsFlags) (*token.Keyring, error) {
	k, err := kf.kms(ctx)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return token.NewKeyring()
	}
	if kf.keyID == "" {
		return nil, errors.New("--kms aws needs --kms-key-id (the KMS key that wraps this version)")
	}
	return token.EmptyKeyring().RotateKMS(ctx, k, kf.keyID)
}

func newKeysRotateCmd(cfg *config.Config) *cobra.Command {
	var kf kmsFlags
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Add a key version and make it current; old tokens still detokenize",
		Long: `Adds a key version with a fresh HMAC key and KEK (or a KMS key with --kms aws
--kms-key-id) and makes it current. Running tokenizers pick it up on restart; until then
they keep tokenizing under the previous version. Tokens carry their version, so old tokens
and vault records stay valid. Back up the keyring file after rotating.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			path := cfg.Keyring
			if path == "" || path[0] == '{' {
				return errors.New("keys rotate: --keyring must name the keyring file (an inline PCISTREAM_KEYRING cannot be rewritten)")
			}
			k, err := kf.kms(ctx)
			if err != nil {
				return err
			}
			var lopts []token.LoadOpt
			if k != nil {
				lopts = append(lopts, token.WithKMS(k))
			}
			kr, err := token.Load(ctx, path, lopts...)
			if err != nil {
				return err
			}
			var next *token.Keyring
			if k != nil {
				if kf.keyID == "" {
					return errors.New("--kms aws needs --kms-key-id (the KMS key that wraps the new version)")
				}
				next, err = kr.RotateKMS(ctx, k, kf.keyID)
			} else {
				next, err = kr.Rotate()
			}
			if err != nil {
				return err
			}
			if err := next.Save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "keyring %s: key version %d is now current (previous: %d); restart tokenizers to use it\n", path, next.Current(), kr.Current())
			return nil
		},
	}
	kf.bind(cmd)
	return cmd
}

func newKeysListCmd(cfg *config.Config) *cobra.Command {
	var kf kmsFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List key versions (never prints key material)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kr, _, err := openKeyring(cmd.Context(), cfg, &kf)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "VERSION\tCURRENT\tCREATED\tKEK")
			for _, v := range kr.Versions() {
				kek := "local (AES-KW)"
				if v.KMSKeyID != "" {
					kek = "kms:" + v.KMSKeyID
				}
				cur := ""
				if v.Current {
					cur = "*"
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", v.Version, cur, v.Created.Format("2006-01-02T15:04:05Z"), kek)
			}
			return w.Flush()
		},
	}
	kf.bind(cmd)
	return cmd
}
