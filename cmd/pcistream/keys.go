package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/opaudit"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/schemas"
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
		Short: "Manage the keyrings: token keys for the tokenizer, vault keys for detokenization",
		Long: `Keys come in two keyrings, one per role, so that no process holds both.

The tokenizer keyring (--keyring) holds, per key version, the HMAC-SHA-256 key that makes
tokens and the X25519 public key that vault data keys are sealed to: the tokenizer can
tokenize and seal, and cannot open a vault record. The detokenize keyring
(--detokenize-keyring; detokenize reads it through --keyring) holds the X25519 private
keys that open vault records, and no token key. Every key in both files is stored
wrapped (by a key-encryption key in the file, or by AWS KMS with --kms aws); mode 0600
(or 0440 on a Kubernetes secret) is enforced. With KMS, the roles are KMS grants: see
the README, "Key roles". Rotation adds a version to both keyrings and makes it current;
older versions stay, so their tokens still detokenize, until the version is retired
(keys retire: its vault entries are deleted).`,
	}
	cmd.AddCommand(newKeysInitCmd(cfg), newKeysRotateCmd(cfg), newKeysListCmd(cfg), newKeysRetireCmd(cfg))
	return cmd
}

// defaultDetokenizePath is where the detokenize keyring goes by default:
// next to the tokenizer keyring, named <name>-detokenize.json.
func defaultDetokenizePath(keyring string) string {
	ext := filepath.Ext(keyring)
	return strings.TrimSuffix(keyring, ext) + "-detokenize" + ext
}

// keyringPaths returns the tokenizer and detokenize keyring paths.
func keyringPaths(cfg *config.Config, detok string) (string, string, error) {
	path := cfg.Keyring
	if path == "" || path[0] == '{' {
		return "", "", errors.New("--keyring must name the tokenizer keyring file (an inline PCISTREAM_KEYRING cannot be written)")
	}
	if detok == "" {
		detok = defaultDetokenizePath(path)
	}
	if filepath.Clean(detok) == filepath.Clean(path) {
		return "", "", errors.New("--detokenize-keyring must differ from --keyring: the two roles never share a file")
	}
	return path, detok, nil
}

func newKeysInitCmd(cfg *config.Config) *cobra.Command {
	var (
		kf        kmsFlags
		ifMissing bool
		detok     string
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the tokenizer and detokenize keyrings with key version 1 (refuses to overwrite)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, dpath, err := keyringPaths(cfg, detok)
			if err != nil {
				return fmt.Errorf("keys init: %w", err)
			}
			exist := 0
			for _, p := range []string{path, dpath} {
				if _, err := os.Stat(p); err == nil {
					exist++
				} else if !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("keys init: %w", err)
				}
			}
			switch {
			case exist > 0 && ifMissing:
				fmt.Fprintf(cmd.ErrOrStderr(), "keyring %s exists; left as it is\n", path)
				return nil
			case exist > 0:
				return fmt.Errorf("keys init: %s or %s already exists; losing keys loses the vault, so keyrings are never overwritten (use `pcistream keys rotate`)", path, dpath)
			}
			full, err := initKeyring(cmd.Context(), &kf)
			if err != nil {
				return err
			}
			tok, dk, err := full.Split()
			if err != nil {
				return err
			}
			// The detokenize keyring first: no token may exist whose vault
			// record nobody can open.
			if err := dk.Save(dpath); err != nil {
				return err
			}
			if err := tok.Save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created tokenizer keyring %s and detokenize keyring %s (mode 0600) with key version %d; give the tokenizer only the first and detokenization only the second\n", path, dpath, tok.Current())
			return nil
		},
	}
	kf.bind(cmd)
	cmd.Flags().BoolVar(&ifMissing, "if-missing", false, "succeed without changes when the keyring exists (for idempotent setup jobs)")
	cmd.Flags().StringVar(&detok, "detokenize-keyring", "", "the detokenize keyring to create (default: next to --keyring, named <name>-detokenize.json)")
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
	var (
		kf     kmsFlags
		detok  string
		reason string
	)
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Add a key version to both keyrings and make it current; old tokens still detokenize",
		Long: `Adds a key version with a fresh token key and vault key pair (or a KMS key with --kms aws
--kms-key-id) to the tokenizer keyring (--keyring) and the detokenize keyring
(--detokenize-keyring), and makes it current. The detokenize keyring is written first.
Running tokenizers pick the new version up on restart; until then they keep tokenizing
under the previous one. Tokens carry their version, so old tokens and vault records stay
valid. A v1 keyring (one file for both roles) is rotated in place. Back up both files.

The rotation is an audit event (action keys_rotate, the Kafka principal as actor,
--reason, the new and previous key versions), written before the new version is saved:
when Kafka or the registry cannot be reached, nothing is rotated.`,
		Example: `  pcistream keys rotate --reason "CHG-12 yearly rotation"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if strings.TrimSpace(reason) == "" {
				return usageError{errors.New("keys rotate needs --reason: the rotation is recorded in the audit trail")}
			}
			path, dpath, err := keyringPaths(cfg, detok)
			if err != nil {
				return fmt.Errorf("keys rotate: %w", err)
			}
			k, err := kf.kms(ctx)
			if err != nil {
				return err
			}
			if k != nil && kf.keyID == "" {
				return errors.New("--kms aws needs --kms-key-id (the KMS key that wraps the new version)")
			}
			var lopts []token.LoadOpt
			if k != nil {
				lopts = append(lopts, token.WithKMS(k))
			}
			kr, err := token.Load(ctx, path, lopts...)
			if err != nil {
				return err
			}
			if kr.Role() == token.RoleFull {
				return rotateFull(cmd, cfg, reason, kr, k, kf.keyID, path)
			}
			dk, err := token.Load(ctx, dpath, lopts...)
			if err != nil {
				return fmt.Errorf("keys rotate: the detokenize keyring: %w", err)
			}
			var nt, nd *token.Keyring
			if k != nil {
				nt, nd, err = token.RotatePairKMS(ctx, k, kf.keyID, kr, dk)
			} else {
				nt, nd, err = token.RotatePair(kr, dk)
			}
			if err != nil {
				return err
			}
			if err := auditRotation(ctx, cfg, reason, kr.Current(), nt.Current(), path, dpath); err != nil {
				return err
			}
			if err := nd.Save(dpath); err != nil {
				return err
			}
			if err := nt.Save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "keyrings %s and %s: key version %d is now current (previous: %d); restart tokenizers to use it\n", path, dpath, nt.Current(), kr.Current())
			return nil
		},
	}
	kf.bind(cmd)
	cmd.Flags().StringVar(&detok, "detokenize-keyring", "", "the detokenize keyring (default: next to --keyring, named <name>-detokenize.json)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the keys are rotated, for the audit event (required)")
	return cmd
}

// auditRotation records a rotation before it takes effect (fail closed: no
// event, no new key).
func auditRotation(ctx context.Context, cfg *config.Config, reason string, prev, next uint32, paths ...string) error {
	ev := schemas.AuditEvent{
		Action:  "keys_rotate",
		Outcome: "ok",
		Subject: "keyring",
		Attrs: map[string]string{
			"key_version":      fmt.Sprint(next),
			"previous_version": fmt.Sprint(prev),
			"keyrings":         strings.Join(paths, ","),
		},
	}
	if err := opaudit.Operator(ctx, cfg, reason, &ev); err != nil {
		return fmt.Errorf("keys rotate: recording the rotation in the audit trail failed, nothing rotated: %w", err)
	}
	return nil
}

// rotateFull rotates a single-file (v1 or full-role) keyring in place.
func rotateFull(cmd *cobra.Command, cfg *config.Config, reason string, kr *token.Keyring, k token.KMS, keyID, path string) error {
	var next *token.Keyring
	var err error
	if k != nil {
		next, err = kr.RotateKMS(cmd.Context(), k, keyID)
	} else {
		next, err = kr.Rotate()
	}
	if err != nil {
		return err
	}
	if err := auditRotation(cmd.Context(), cfg, reason, kr.Current(), next.Current(), path); err != nil {
		return err
	}
	if err := next.Save(path); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "keyring %s (one file for both roles; create role keyrings with keys init): key version %d is now current (previous: %d); restart tokenizers to use it\n", path, next.Current(), kr.Current())
	return nil
}

func newKeysListCmd(cfg *config.Config) *cobra.Command {
	var kf kmsFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List key versions and what the keyring can do with each (never prints key material)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kr, _, err := openKeyring(cmd.Context(), cfg, &kf)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "ROLE %s\n", kr.Role())
			fmt.Fprintln(w, "VERSION\tCURRENT\tCREATED\tSEALING\tTOKENIZE\tOPEN")
			for _, v := range kr.Versions() {
				seal := v.Sealing
				if v.KMSKeyID != "" {
					seal = "kms:" + v.KMSKeyID
				}
				cur := ""
				if v.Current {
					cur = "*"
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", v.Version, cur, v.Created.Format("2006-01-02T15:04:05Z"), seal, yesNo(v.CanToken), yesNo(v.CanOpen))
			}
			return w.Flush()
		},
	}
	kf.bind(cmd)
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
