package token

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/hpke"
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
	"sync"
	"time"
)

// KeyringFormat identifies the keyring file format written today; Parse
// also reads keyringFormatV1 files (full role, plaintext HMAC keys).
const KeyringFormat = "pcistream-keyring/v2"

const keyringFormatV1 = "pcistream-keyring/v1"

// EnvKeyring is the environment variable behind --keyring. It may hold a path
// or, for development and CI, the keyring JSON itself (see Open).
const EnvKeyring = "PCISTREAM_KEYRING"

// keySize is the size of every symmetric secret in the keyring: 256 bits.
const keySize = 32

// ErrNoKeyring is returned when neither a keyring file nor PCISTREAM_KEYRING is given.
var ErrNoKeyring = errors.New("no keyring: pass --keyring FILE (create one with `pcistream keys init`) or set " + EnvKeyring)

// ErrUnknownVersion is returned for a key version the keyring does not hold.
var ErrUnknownVersion = errors.New("unknown key version")

// ErrNoKEK is returned when a key version has no key-encryption key available
// (neither a local key nor a KMS key id with a KMS configured).
var ErrNoKEK = errors.New("no key-encryption key for this key version")

// ErrSealOnly is returned when a keyring that may only seal (the tokenizer's)
// is asked to open a vault record.
var ErrSealOnly = errors.New("this keyring can seal vault records but not open them (it is the tokenizer's): detokenize with the detokenize keyring written by `pcistream keys init`")

// ErrNoTokenKey is returned when a keyring without token keys (the
// detokenizer's) is asked to tokenize.
var ErrNoTokenKey = errors.New("this keyring holds no token keys (it is the detokenize keyring): run the tokenizer with the tokenizer keyring")

// Role says what a keyring may do. Holding a token key and one tokenized
// record lets anyone brute-force the PAN's hidden digits offline (about 10^6
// to 10^9 HMACs), so token keys go only to the tokenizer; the key that opens
// vault records goes only to detokenization. Neither can do the other's job.
type Role string

// Roles.
const (
	// RoleFull holds everything: keyrings built in memory (tests, demo) and
	// v1 files. `keys init` never writes one.
	RoleFull Role = "full"
	// RoleTokenizer holds the token (HMAC) keys and the vault public keys:
	// it tokenizes and seals, and cannot open a vault record.
	RoleTokenizer Role = "tokenizer"
	// RoleDetokenizer holds the vault private keys: it opens vault records
	// and cannot make tokens.
	RoleDetokenizer Role = "detokenizer"
)

// Data-key wrapping schemes of a key version.
const (
	wrapHPKE  = "x25519-hpke" // sealed to the version's X25519 public key (HPKE, RFC 9180)
	wrapKMS   = "kms"         // wrapped by a KMS key
	wrapAESKW = "aes-kw"      // v1: wrapped by a local symmetric KEK that also unwraps
)

// hpkeKEM etc. are the HPKE suite of vault data keys: DHKEM(X25519,
// HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
var (
	hpkeKEM  = hpke.DHKEM(ecdh.X25519())
	hpkeKDF  = hpke.HKDFSHA256()
	hpkeAEAD = hpke.AES256GCM()
)

// Keyring is a versioned set of keys. Each version has an HMAC key (for
// tokens) and a way to wrap vault data keys: an X25519 key pair (sealing
// needs only the public key), a KMS key, or, in v1 keyrings, a local
// symmetric KEK. One version is current: new tokens and vault records use it;
// older versions stay so that their tokens still detokenize. A Keyring is
// immutable once built and safe for concurrent use; Rotate returns a new one.
type Keyring struct {
	role     Role
	current  uint32
	versions map[uint32]*keyVersion
	// macs pools HMAC states per key version (*keyVersion -> *sync.Pool
	// of *pooledMAC): see TokenizeVersion.
	macs sync.Map
}

type keyVersion struct {
	version  uint32
	created  time.Time
	wrap     string // wrapHPKE, wrapKMS or wrapAESKW
	hmac     []byte // nil in the detokenizer role
	kek      []byte // wrapAESKW: the data-key KEK (v1)
	kmsKeyID string // wrapKMS

	vaultPub  []byte // wrapHPKE: X25519 public key
	vaultPriv []byte // wrapHPKE: X25519 private key; nil in the tokenizer role

	// fileKEK wraps this version's secrets in the file form of local
	// versions, so no key is ever written in plain text.
	fileKEK []byte
	// hmacWrapped is the HMAC key wrapped by the KMS (wrapKMS versions).
	hmacWrapped []byte
}

// VersionInfo describes one key version without any secret material.
type VersionInfo struct {
	Version  uint32
	Created  time.Time
	Current  bool
	LocalKEK bool   // v1: a local symmetric KEK wraps and unwraps data keys
	KMSKeyID string // the KEK is this KMS key
	Sealing  string // how data keys are wrapped: x25519-hpke, kms or aes-kw
	CanToken bool   // the keyring holds this version's token key
	CanOpen  bool   // the keyring can open this version's vault records (given the KMS for KMS versions)
}

// keyringFile is the on-disk JSON form.
type keyringFile struct {
	Format   string        `json:"format"`
	Role     Role          `json:"role,omitempty"`
	Current  uint32        `json:"current"`
	Versions []versionFile `json:"versions"`
}

type versionFile struct {
	Version uint32    `json:"version"`
	Created time.Time `json:"created"`
	// DataKeyWrap says how vault data keys of this version are wrapped.
	DataKeyWrap string `json:"data_key_wrap,omitempty"`
	// HMACKey is the v1 plaintext token key; never written any more.
	HMACKey []byte `json:"hmac_key,omitempty"`
	// HMACKeyWrapped is the token key wrapped by KEK (AES key wrap) or by
	// the KMS key KMSKeyID.
	HMACKeyWrapped []byte `json:"hmac_key_wrapped,omitempty"`
	// KEK is the local key that wraps this file's secrets (v1: the data-key
	// KEK itself).
	KEK []byte `json:"kek,omitempty"`
	// KMSKeyID names the KMS key that wraps data keys and the token key.
	KMSKeyID string `json:"kms_key_id,omitempty"`
	// VaultPublicKey is the X25519 key vault data keys are sealed to.
	VaultPublicKey []byte `json:"vault_public_key,omitempty"`
	// VaultPrivateKeyWrapped is its private key, wrapped by KEK
	// (detokenizer files only).
	VaultPrivateKeyWrapped []byte `json:"vault_private_key_wrapped,omitempty"`
}

// Role returns what the keyring may do.
func (k *Keyring) Role() Role { return k.role }

// Current returns the current key version.
func (k *Keyring) Current() uint32 { return k.current }

// Versions describes every key version, oldest first.
func (k *Keyring) Versions() []VersionInfo {
	out := make([]VersionInfo, 0, len(k.versions))
	for _, v := range k.versions {
		out = append(out, VersionInfo{
			Version: v.version, Created: v.created, Current: v.version == k.current,
			LocalKEK: v.kek != nil, KMSKeyID: v.kmsKeyID, Sealing: v.wrap,
			CanToken: v.hmac != nil, CanOpen: k.canOpen(v),
		})
	}
	slices.SortFunc(out, func(a, b VersionInfo) int { return int(int64(a.Version) - int64(b.Version)) })
	return out
}

func (k *Keyring) canOpen(v *keyVersion) bool {
	if k.role == RoleTokenizer {
		return false
	}
	switch v.wrap {
	case wrapHPKE:
		return v.vaultPriv != nil
	case wrapAESKW:
		return v.kek != nil
	}
	return v.kmsKeyID != ""
}

// CanOpen reports whether the keyring can open vault records of version v
// (for KMS versions: given a KMS that grants decryption).
func (k *Keyring) CanOpen(v uint32) bool {
	kv, ok := k.versions[v]
	return ok && k.canOpen(kv)
}

// HasKEK reports whether version v has a local v1 key-encryption key.
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

// EmptyKeyring returns a full-role keyring without versions, to build a
// first version with RotateKMS. It cannot tokenize until it has one.
func EmptyKeyring() *Keyring { return &Keyring{role: RoleFull, versions: map[uint32]*keyVersion{}} }

// NewKeyring returns a full-role keyring with one fresh local version (1).
// Split it into the tokenizer's and the detokenizer's keyrings to store it.
func NewKeyring() (*Keyring, error) {
	return EmptyKeyring().Rotate()
}

// newLocalVersion returns a version with a fresh HMAC key, X25519 vault key
// pair and file KEK.
func newLocalVersion() (*keyVersion, error) {
	h, err := randomKey()
	if err != nil {
		return nil, err
	}
	fk, err := randomKey()
	if err != nil {
		return nil, err
	}
	priv, err := hpkeKEM.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("generating vault key pair: %w", err)
	}
	pb, err := priv.Bytes()
	if err != nil {
		return nil, fmt.Errorf("generating vault key pair: %w", err)
	}
	return &keyVersion{wrap: wrapHPKE, hmac: h, fileKEK: fk, vaultPub: priv.PublicKey().Bytes(), vaultPriv: pb}, nil
}

// Rotate returns a copy of the full-role keyring k with a new local version
// (highest + 1) made current. Old versions are kept so their tokens and
// vault records still work. Role keyrings rotate together with RotatePair.
func (k *Keyring) Rotate() (*Keyring, error) {
	if k.role != RoleFull {
		return nil, fmt.Errorf("rotate: a %s keyring rotates together with its pair (RotatePair)", k.role)
	}
	kv, err := newLocalVersion()
	if err != nil {
		return nil, err
	}
	return k.withVersion(kv, k.nextVersion())
}

// RotateKMS is Rotate for KMS deployments: the new version's data keys are
// wrapped by kmsKeyID, and its HMAC key is stored wrapped by the same KMS key,
// so the keyring file holds no plaintext secret for that version.
func (k *Keyring) RotateKMS(ctx context.Context, kms KMS, kmsKeyID string) (*Keyring, error) {
	if k.role != RoleFull {
		return nil, fmt.Errorf("rotate: a %s keyring rotates together with its pair (RotatePairKMS)", k.role)
	}
	next := k.nextVersion()
	kv, err := newKMSVersion(ctx, kms, kmsKeyID, next)
	if err != nil {
		return nil, err
	}
	return k.withVersion(kv, next)
}

func newKMSVersion(ctx context.Context, kms KMS, kmsKeyID string, version uint32) (*keyVersion, error) {
	if kmsKeyID == "" {
		return nil, errors.New("rotate with KMS: empty KMS key id")
	}
	h, err := randomKey()
	if err != nil {
		return nil, err
	}
	w, err := kms.Wrap(ctx, KeyRef{Version: version, KMSKeyID: kmsKeyID}, h, hmacWrapContext)
	if err != nil {
		return nil, fmt.Errorf("wrapping HMAC key of version %d with KMS: %w", version, err)
	}
	return &keyVersion{wrap: wrapKMS, hmac: h, hmacWrapped: w, kmsKeyID: kmsKeyID}, nil
}

// Split returns the tokenizer's and the detokenizer's keyrings of a
// full-role keyring. Each gets its own file KEKs. v1 versions (a symmetric
// KEK that both seals and opens) cannot be split.
func (k *Keyring) Split() (tok, detok *Keyring, err error) {
	if k.role != RoleFull {
		return nil, nil, fmt.Errorf("split: the keyring is already a %s keyring", k.role)
	}
	tok = &Keyring{role: RoleTokenizer, current: k.current, versions: map[uint32]*keyVersion{}}
	detok = &Keyring{role: RoleDetokenizer, current: k.current, versions: map[uint32]*keyVersion{}}
	for v, kv := range k.versions {
		t, d, err := kv.split()
		if err != nil {
			return nil, nil, err
		}
		tok.versions[v], detok.versions[v] = t, d
	}
	return tok, detok, nil
}

// split returns the tokenizer's and detokenizer's halves of kv.
func (kv *keyVersion) split() (tok, detok *keyVersion, err error) {
	if kv.wrap == wrapAESKW {
		return nil, nil, fmt.Errorf("key version %d uses a v1 symmetric KEK, which both seals and opens: rotate to a new version and keep the v1 keyring with detokenization only", kv.version)
	}
	t, d := *kv, *kv
	t.vaultPriv = nil
	d.hmac, d.hmacWrapped = nil, nil
	if kv.wrap == wrapHPKE {
		if t.fileKEK, err = randomKey(); err != nil {
			return nil, nil, err
		}
		if d.fileKEK, err = randomKey(); err != nil {
			return nil, nil, err
		}
	}
	return &t, &d, nil
}

// RotatePair adds a new local version to a tokenizer keyring and its
// detokenizer keyring: the token key and the public key go to the first, the
// private key to the second. Save the detokenizer keyring first, so that no
// record is sealed to a key that is not yet stored.
func RotatePair(tok, detok *Keyring) (*Keyring, *Keyring, error) {
	kv, err := newLocalVersion()
	if err != nil {
		return nil, nil, err
	}
	return rotatePair(tok, detok, kv)
}

// RotatePairKMS is RotatePair for a KMS-backed version: both keyrings name
// the KMS key; the token key is stored KMS-wrapped in the tokenizer's only.
// The separation of roles is then the KMS's: grant the tokenizer Encrypt,
// and Decrypt only for the token-key purpose; grant detokenization Decrypt
// for the vault-data-key purpose (see README, "Key roles").
func RotatePairKMS(ctx context.Context, kms KMS, kmsKeyID string, tok, detok *Keyring) (*Keyring, *Keyring, error) {
	kv, err := newKMSVersion(ctx, kms, kmsKeyID, max(tok.nextVersion(), detok.nextVersion()))
	if err != nil {
		return nil, nil, err
	}
	return rotatePair(tok, detok, kv)
}

func rotatePair(tok, detok *Keyring, kv *keyVersion) (*Keyring, *Keyring, error) {
	if tok.role != RoleTokenizer || detok.role != RoleDetokenizer {
		return nil, nil, fmt.Errorf("rotate: want a tokenizer and a detokenizer keyring, got %s and %s", tok.role, detok.role)
	}
	next := max(tok.nextVersion(), detok.nextVersion())
	kv.version = next
	t, d, err := kv.split()
	if err != nil {
		return nil, nil, err
	}
	nt, err := tok.withVersion(t, next)
	if err != nil {
		return nil, nil, err
	}
	nd, err := detok.withVersion(d, next)
	if err != nil {
		return nil, nil, err
	}
	return nt, nd, nil
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

func (k *Keyring) withVersion(kv *keyVersion, version uint32) (*Keyring, error) {
	kv.version = version
	kv.created = time.Now().UTC().Truncate(time.Second)
	out := &Keyring{role: k.role, current: kv.version, versions: make(map[uint32]*keyVersion, len(k.versions)+1)}
	for v, old := range k.versions {
		out.versions[v] = old
	}
	out.versions[kv.version] = kv
	return out, nil
}

// Marshal returns the keyring's JSON file form. Every secret in it is
// wrapped: token keys and vault private keys by the version's file KEK (or
// the KMS). Write it only with mode 0600 (Save does).
func (k *Keyring) Marshal() ([]byte, error) {
	f := keyringFile{Format: KeyringFormat, Role: k.role, Current: k.current}
	for _, vi := range k.Versions() {
		vf, err := k.versions[vi.Version].file()
		if err != nil {
			return nil, err
		}
		f.Versions = append(f.Versions, vf)
	}
	return json.MarshalIndent(f, "", "  ")
}

// file returns the file form of kv.
func (kv *keyVersion) file() (versionFile, error) {
	vf := versionFile{Version: kv.version, Created: kv.created, DataKeyWrap: kv.wrap, KMSKeyID: kv.kmsKeyID, VaultPublicKey: kv.vaultPub}
	var err error
	switch kv.wrap {
	case wrapKMS:
		vf.HMACKeyWrapped = kv.hmacWrapped
		return vf, nil
	case wrapAESKW:
		// v1 versions: the data-key KEK also wraps the token key.
		vf.KEK = kv.kek
		if kv.hmac != nil {
			vf.HMACKeyWrapped, err = aesKeyWrap(kv.kek, kv.hmac)
		}
		return vf, err
	}
	vf.KEK = kv.fileKEK
	if kv.hmac != nil {
		if vf.HMACKeyWrapped, err = aesKeyWrap(kv.fileKEK, kv.hmac); err != nil {
			return vf, err
		}
	}
	if kv.vaultPriv != nil {
		if vf.VaultPrivateKeyWrapped, err = aesKeyWrap(kv.fileKEK, kv.vaultPriv); err != nil {
			return vf, err
		}
	}
	return vf, nil
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
	switch {
	case f.Format == keyringFormatV1:
		f.Role = RoleFull
	case f.Format != KeyringFormat:
		return nil, fmt.Errorf("keyring format %q not supported (want %q)", f.Format, KeyringFormat)
	}
	switch f.Role {
	case RoleFull, RoleTokenizer, RoleDetokenizer:
	default:
		return nil, fmt.Errorf("keyring role %q not supported (tokenizer, detokenizer or full)", f.Role)
	}
	k := &Keyring{role: f.Role, current: f.Current, versions: make(map[uint32]*keyVersion, len(f.Versions))}
	for _, vf := range f.Versions {
		if vf.Version == 0 {
			return nil, errors.New("keyring: key version 0 is reserved")
		}
		if _, dup := k.versions[vf.Version]; dup {
			return nil, fmt.Errorf("keyring: version %d appears twice", vf.Version)
		}
		kv, err := parseVersion(ctx, &c, f.Format == keyringFormatV1, vf)
		if err != nil {
			return nil, fmt.Errorf("keyring: version %d: %w", vf.Version, err)
		}
		if err := checkRole(f.Role, kv); err != nil {
			return nil, fmt.Errorf("keyring: version %d: %w", vf.Version, err)
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

// checkRole refuses a version holding a key its role must not have.
func checkRole(r Role, kv *keyVersion) error {
	switch {
	case r == RoleTokenizer && (kv.vaultPriv != nil || kv.wrap == wrapAESKW):
		return errors.New("a tokenizer keyring must not hold a key that opens vault records")
	case r == RoleTokenizer && kv.hmac == nil:
		return errors.New("a tokenizer keyring needs the token key of every version")
	case r == RoleDetokenizer && kv.hmac != nil:
		return errors.New("a detokenize keyring must not hold token keys")
	}
	return nil
}

// parseVersion reads one version, unwrapping its secrets.
func parseVersion(ctx context.Context, c *loadCfg, v1 bool, vf versionFile) (*keyVersion, error) {
	kv := &keyVersion{version: vf.Version, created: vf.Created, kmsKeyID: vf.KMSKeyID, wrap: vf.DataKeyWrap}
	if kv.wrap == "" {
		// v1 files name no scheme: a KMS key id or a local symmetric KEK.
		kv.wrap = wrapAESKW
		if vf.KMSKeyID != "" {
			kv.wrap = wrapKMS
		}
	}
	if !v1 && vf.HMACKey != nil {
		return nil, errors.New("a plaintext hmac_key is not allowed in a v2 keyring (token keys are stored wrapped)")
	}
	switch kv.wrap {
	case wrapKMS:
		if vf.KMSKeyID == "" || vf.KEK != nil {
			return nil, errors.New("a KMS version needs a kms_key_id and no kek")
		}
		if vf.HMACKeyWrapped == nil && vf.HMACKey == nil {
			return kv, nil // detokenizer
		}
	case wrapAESKW, wrapHPKE:
		if len(vf.KEK) != keySize || vf.KMSKeyID != "" {
			return nil, errors.New("a local version needs a 32-byte kek and no kms_key_id")
		}
		if kv.wrap == wrapAESKW {
			kv.kek = vf.KEK
		} else {
			kv.fileKEK = vf.KEK
		}
	default:
		return nil, fmt.Errorf("data_key_wrap %q not supported", kv.wrap)
	}
	if kv.wrap == wrapHPKE {
		if err := kv.parseVaultKeys(vf); err != nil {
			return nil, err
		}
	}
	return kv, kv.parseHMAC(ctx, c, vf)
}

// parseVaultKeys reads the X25519 public key and, when present, unwraps the
// private key and checks that the two belong together.
func (kv *keyVersion) parseVaultKeys(vf versionFile) error {
	if _, err := hpkeKEM.NewPublicKey(vf.VaultPublicKey); err != nil {
		return errors.New("vault_public_key is not an X25519 public key")
	}
	kv.vaultPub = vf.VaultPublicKey
	if vf.VaultPrivateKeyWrapped == nil {
		return nil
	}
	pb, err := aesKeyUnwrap(kv.fileKEK, vf.VaultPrivateKeyWrapped)
	if err != nil {
		return fmt.Errorf("unwrapping the vault private key: %w", err)
	}
	priv, err := hpkeKEM.NewPrivateKey(pb)
	if err != nil || !bytes.Equal(priv.PublicKey().Bytes(), kv.vaultPub) {
		return errors.New("the vault private key does not match vault_public_key")
	}
	kv.vaultPriv = pb
	return nil
}

// parseHMAC reads the token key: v1 plaintext, locally wrapped, or
// KMS-wrapped (unwrapped once, here).
func (kv *keyVersion) parseHMAC(ctx context.Context, c *loadCfg, vf versionFile) error {
	var h []byte
	var err error
	switch {
	case vf.HMACKey != nil && vf.HMACKeyWrapped == nil:
		h = vf.HMACKey
	case vf.HMACKey == nil && vf.HMACKeyWrapped == nil:
		return nil
	case vf.HMACKey != nil:
		return errors.New("both hmac_key and hmac_key_wrapped are set")
	case kv.wrap == wrapKMS:
		if c.kms == nil {
			return errors.New("the hmac key is KMS-wrapped: configure the KMS (--kms aws)")
		}
		h, err = c.kms.Unwrap(ctx, KeyRef{Version: vf.Version, KMSKeyID: vf.KMSKeyID}, vf.HMACKeyWrapped, hmacWrapContext)
		if err != nil {
			return fmt.Errorf("unwrapping the hmac key: %w", err)
		}
		kv.hmacWrapped = vf.HMACKeyWrapped
	default:
		kek := kv.fileKEK
		if kv.wrap == wrapAESKW {
			kek = kv.kek
		}
		if h, err = aesKeyUnwrap(kek, vf.HMACKeyWrapped); err != nil {
			return fmt.Errorf("unwrapping the hmac key: %w", err)
		}
	}
	if len(h) != keySize {
		return fmt.Errorf("hmac key is %d bytes, want %d", len(h), keySize)
	}
	kv.hmac = h
	return nil
}
