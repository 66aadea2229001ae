package token

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// KeyringFormat identifies the keyring file format; Parse refuses others.
const KeyringFormat = "pcistream-keyring/v1"

// EnvKeyring is the environment variable behind --keyring. It may hold a path
// or, for development and CI, the keyring JSON itself (see Open).
const EnvKeyring = "PCISTREAM_KEYRING"

// keySize is the size of every secret in the keyring: 256 bits.
const keySize = 32

// ErrNoKeyring is returned when neither a keyring file nor PCISTREAM_KEYRING is given.
var ErrNoKeyring = errors.New("no keyring: pass --keyring FILE (create one with `pcistream keys init`) or set " + EnvKeyring)

// ErrUnknownVersion is returned for a key version the keyring does not hold.
var ErrUnknownVersion = errors.New("unknown key version")

// ErrNoKEK is returned when a key version has no key-encryption key available
// (neither a local KEK nor a KMS key id with a KMS configured).
var ErrNoKEK = errors.New("no key-encryption key for this key version")

// Keyring is a versioned set of secrets. Each version has an HMAC key (for
// tokens) and a key-encryption key: either local (kek) or a KMS key id. One
// version is current: new tokens and vault records use it; older versions stay
// so that their tokens still detokenize. A Keyring is immutable once built and
// safe for concurrent use; Rotate returns a new Keyring.
type Keyring struct {
	current  uint32
	versions map[uint32]*keyVersion
}

type keyVersion struct {
	version  uint32
	created  time.Time
	hmac     []byte
	kek      []byte // nil when the KEK lives in a KMS
	kmsKeyID string // "" for local KEKs

	// file form of the HMAC key when it is stored wrapped by the KMS.
	hmacWrapped []byte
}

// VersionInfo describes one key version without any secret material.
type VersionInfo struct {
	Version  uint32
	Created  time.Time
	Current  bool
	LocalKEK bool   // the KEK is in the keyring (AES key wrap)
	KMSKeyID string // the KEK is this KMS key
}

// keyringFile is the on-disk JSON form.
type keyringFile struct {
	Format   string        `json:"format"`
	Current  uint32        `json:"current"`
	Versions []versionFile `json:"versions"`
}

type versionFile struct {
	Version uint32    `json:"version"`
	Created time.Time `json:"created"`
	// HMACKey is the token key, base64. Empty when HMACKeyWrapped is set.
	HMACKey []byte `json:"hmac_key,omitempty"`
	// HMACKeyWrapped is the token key wrapped by the KMS key KMSKeyID; it is
	// unwrapped once at load so the file holds no plaintext secret.
	HMACKeyWrapped []byte `json:"hmac_key_wrapped,omitempty"`
	// KEK is the local key-encryption key, base64.
	KEK []byte `json:"kek,omitempty"`
	// KMSKeyID names the KMS key that wraps data keys for this version.
	KMSKeyID string `json:"kms_key_id,omitempty"`
}

// Current returns the current key version.
func (k *Keyring) Current() uint32 { return k.current }

// Versions describes every key version, oldest first.
func (k *Keyring) Versions() []VersionInfo {
	out := make([]VersionInfo, 0, len(k.versions))
	for _, v := range k.versions {
		out = append(out, VersionInfo{
			Version: v.version, Created: v.created, Current: v.version == k.current,
			LocalKEK: v.kek != nil, KMSKeyID: v.kmsKeyID,
		})
	}
	slices.SortFunc(out, func(a, b VersionInfo) int { return int(int64(a.Version) - int64(b.Version)) })
	return out
}

// HasKEK reports whether version v has a local key-encryption key.
func (k *Keyring) HasKEK(v uint32) bool {
	kv, ok := k.versions[v]
	return ok && kv.kek != nil
}

func (k *Keyring) version(v uint32) (*keyVersion, error) {
	kv, ok := k.versions[v]
	if !ok {
		return nil, fmt.Errorf("%w %d (keyring has versions %v)", ErrUnknownVersion, v, k.versionNumbers())
	}
	return kv, nil
}

func (k *Keyring) versionNumbers() []uint32 {
	vs := make([]uint32, 0, len(k.versions))
	for v := range k.versions {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

func randomKey() ([]byte, error) {
	b := make([]byte, keySize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	return b, nil
}

// EmptyKeyring returns a keyring without versions, to build a first version
// with RotateKMS. It cannot tokenize until it has one.
func EmptyKeyring() *Keyring { return &Keyring{versions: map[uint32]*keyVersion{}} }

// NewKeyring returns a keyring with one fresh version (1) holding a random
// HMAC key and a random local KEK.
func NewKeyring() (*Keyring, error) {
	return EmptyKeyring().Rotate()
}

// Rotate returns a copy of k with a new version (highest + 1) made current,
// with a fresh HMAC key and a fresh local KEK. Old versions are kept so their
// tokens and vault records still work.
func (k *Keyring) Rotate() (*Keyring, error) {
	h, err := randomKey()
	if err != nil {
		return nil, err
	}
	kek, err := randomKey()
	if err != nil {
		return nil, err
	}
	return k.withVersion(&keyVersion{hmac: h, kek: kek})
}

// RotateKMS is Rotate for KMS deployments: the new version's data keys are
// wrapped by kmsKeyID, and its HMAC key is stored wrapped by the same KMS key,
// so the keyring file holds no plaintext secret for that version.
func (k *Keyring) RotateKMS(ctx context.Context, kms KMS, kmsKeyID string) (*Keyring, error) {
	if kmsKeyID == "" {
		return nil, errors.New("rotate with KMS: empty KMS key id")
	}
	h, err := randomKey()
	if err != nil {
		return nil, err
	}
	next := k.nextVersion()
	w, err := kms.Wrap(ctx, KeyRef{Version: next, KMSKeyID: kmsKeyID}, h, hmacWrapContext)
	if err != nil {
		return nil, fmt.Errorf("wrapping HMAC key of version %d with KMS: %w", next, err)
	}
	return k.withVersion(&keyVersion{hmac: h, hmacWrapped: w, kmsKeyID: kmsKeyID})
}

func (k *Keyring) nextVersion() uint32 {
	var next uint32 = 1
	for v := range k.versions {
		if v >= next {
			next = v + 1
		}
	}
	return next
}

func (k *Keyring) withVersion(kv *keyVersion) (*Keyring, error) {
	kv.version = k.nextVersion()
	kv.created = time.Now().UTC().Truncate(time.Second)
	out := &Keyring{current: kv.version, versions: make(map[uint32]*keyVersion, len(k.versions)+1)}
	for v, old := range k.versions {
		out.versions[v] = old
	}
	out.versions[kv.version] = kv
	return out, nil
}

// Marshal returns the keyring's JSON file form. It contains secrets: write it
// only with mode 0600 (Save does).
func (k *Keyring) Marshal() ([]byte, error) {
	f := keyringFile{Format: KeyringFormat, Current: k.current}
	for _, vi := range k.Versions() {
		kv := k.versions[vi.Version]
		vf := versionFile{Version: kv.version, Created: kv.created, KEK: kv.kek, KMSKeyID: kv.kmsKeyID}
		if kv.hmacWrapped != nil {
			vf.HMACKeyWrapped = kv.hmacWrapped
		} else {
			vf.HMACKey = kv.hmac
		}
		f.Versions = append(f.Versions, vf)
	}
	return json.MarshalIndent(f, "", "  ")
}

// Save writes the keyring to path atomically (temporary file, fsync, rename)
// with mode 0600.
func (k *Keyring) Save(path string) error {
	b, err := k.Marshal()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keyring-*")
	if err != nil {
		return fmt.Errorf("saving keyring: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("saving keyring: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("saving keyring: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving keyring: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving keyring: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("saving keyring: %w", err)
	}
	return nil
}

// LoadOpt configures Load and Parse.
type LoadOpt func(*loadCfg)

type loadCfg struct {
	kms          KMS
	allowLoose   bool
	requireLocal bool
}

// WithKMS gives the loader a KMS to unwrap KMS-wrapped HMAC keys, and the
// keyring's users a KMS for data keys of KMS-backed versions.
func WithKMS(k KMS) LoadOpt { return func(c *loadCfg) { c.kms = k } }

// AllowLoosePermissions skips the file-mode check (tests on filesystems
// without POSIX modes). Never use it in production.
func AllowLoosePermissions() LoadOpt { return func(c *loadCfg) { c.allowLoose = true } }

// maxKeyringBytes bounds a keyring file; a keyring with thousands of
// versions is a few hundred KiB.
const maxKeyringBytes = 4 << 20

// permMask is the set of mode bits a keyring file must not have: any write
// or execute bit for group, and anything for others. Group read is allowed
// because that is how Kubernetes gives a secret to a non-root pod (mode 0440,
// group fsGroup); 0600 and 0400 pass as well.
const permMask = 0o037

// Load reads a keyring from path. It refuses a file that group members could
// change or that others could read (allowed: 0600, 0400, 0640, 0440), because
// a readable keyring lets its reader recompute tokens. The mode is checked on
// the opened file (fstat), so the bytes parsed are the bytes checked, even if
// the path is swapped in between (Kubernetes secret mounts are symlinks that
// are replaced atomically on update).
func Load(ctx context.Context, path string, opts ...LoadOpt) (*Keyring, error) {
	var c loadCfg
	for _, o := range opts {
		o(&c)
	}
	b, err := readKeyringFile(path, c.allowLoose)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	k, err := Parse(ctx, b, opts...)
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	return k, nil
}

// readKeyringFile opens path, checks the opened file's type and mode, and
// reads it.
func readKeyringFile(path string, allowLoose bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("keyring %s does not exist: create it with `pcistream keys init --keyring %s`", path, path)
		}
		return nil, fmt.Errorf("reading keyring: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading keyring %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("keyring %s is not a regular file (%s)", path, st.Mode().Type())
	}
	if perm := st.Mode().Perm(); !allowLoose && perm&permMask != 0 {
		return nil, fmt.Errorf("keyring %s has mode %04o: group may at most read it and others may not access it (chmod 600 %s, or defaultMode 0440 on a Kubernetes secret)", path, perm, path)
	}
	if st.Size() > maxKeyringBytes {
		return nil, fmt.Errorf("keyring %s is %d bytes, more than the %d a keyring can be", path, st.Size(), maxKeyringBytes)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyringBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading keyring %s: %w", path, err)
	}
	return b, nil
}

// Open returns the keyring named by ref: a file path (mode 0600 enforced), or,
// when ref starts with '{', the keyring's JSON itself. The inline form serves
// development and CI through PCISTREAM_KEYRING, which the shared config maps
// onto --keyring; production uses a file or KMS-wrapped key material.
func Open(ctx context.Context, ref string, opts ...LoadOpt) (*Keyring, error) {
	ref = strings.TrimSpace(ref)
	switch {
	case ref == "":
		return nil, ErrNoKeyring
	case strings.HasPrefix(ref, "{"):
		k, err := Parse(ctx, []byte(ref), opts...)
		if err != nil {
			return nil, fmt.Errorf("inline keyring (%s): %w", EnvKeyring, err)
		}
		return k, nil
	default:
		return Load(ctx, ref, opts...)
	}
}

// Parse parses a keyring's JSON form. Errors never include key material.
func Parse(ctx context.Context, b []byte, opts ...LoadOpt) (*Keyring, error) {
	var c loadCfg
	for _, o := range opts {
		o(&c)
	}
	var f keyringFile
	if err := json.Unmarshal(b, &f); err != nil {
		// json errors can quote input; do not include them verbatim.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("keyring is not valid JSON (syntax error at byte %d)", se.Offset)
		}
		return nil, errors.New("keyring JSON does not match the keyring format (format, current, versions)")
	}
	if f.Format != KeyringFormat {
		return nil, fmt.Errorf("keyring format %q not supported (want %q)", f.Format, KeyringFormat)
	}
	k := &Keyring{current: f.Current, versions: make(map[uint32]*keyVersion, len(f.Versions))}
	for _, vf := range f.Versions {
		if vf.Version == 0 {
			return nil, errors.New("keyring: key version 0 is reserved")
		}
		if _, dup := k.versions[vf.Version]; dup {
			return nil, fmt.Errorf("keyring: version %d appears twice", vf.Version)
		}
		kv := &keyVersion{version: vf.Version, created: vf.Created, kmsKeyID: vf.KMSKeyID}
		switch {
		case len(vf.KEK) == keySize && vf.KMSKeyID == "":
			kv.kek = vf.KEK
		case len(vf.KEK) == 0 && vf.KMSKeyID != "":
		default:
			return nil, fmt.Errorf("keyring: version %d needs exactly one of a 32-byte kek or a kms_key_id", vf.Version)
		}
		switch {
		case len(vf.HMACKey) == keySize && vf.HMACKeyWrapped == nil:
			kv.hmac = vf.HMACKey
		case len(vf.HMACKey) == 0 && vf.HMACKeyWrapped != nil:
			if vf.KMSKeyID == "" {
				return nil, fmt.Errorf("keyring: version %d has a wrapped hmac key but no kms_key_id", vf.Version)
			}
			if c.kms == nil {
				return nil, fmt.Errorf("keyring: version %d has a KMS-wrapped hmac key: configure the KMS (--kms aws)", vf.Version)
			}
			h, err := c.kms.Unwrap(ctx, KeyRef{Version: vf.Version, KMSKeyID: vf.KMSKeyID}, vf.HMACKeyWrapped, hmacWrapContext)
			if err != nil {
				return nil, fmt.Errorf("keyring: unwrapping hmac key of version %d: %w", vf.Version, err)
			}
			if len(h) != keySize {
				return nil, fmt.Errorf("keyring: hmac key of version %d unwrapped to %d bytes, want %d", vf.Version, len(h), keySize)
			}
			kv.hmac, kv.hmacWrapped = h, vf.HMACKeyWrapped
		default:
			return nil, fmt.Errorf("keyring: version %d needs a 32-byte hmac_key or an hmac_key_wrapped", vf.Version)
		}
		k.versions[vf.Version] = kv
	}
	if len(k.versions) == 0 {
		return nil, errors.New("keyring has no key versions")
	}
	if _, ok := k.versions[k.current]; !ok {
		return nil, fmt.Errorf("keyring: current version %d is not among its versions %v", k.current, k.versionNumbers())
	}
	return k, nil
}
