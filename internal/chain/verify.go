package chain

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Defect kinds reported by Verify. Each is a reason to fail an audit.
const (
	DefectMissingManifest  = "missing-manifest"    // a sequence number has no manifest
	DefectDeleted          = "delete-marker"       // a delete marker hides a chained object
	DefectShadowVersion    = "shadowing-version"   // a later version was written over a chained key
	DefectMalformed        = "malformed"           // a manifest, checkpoint or record does not parse
	DefectPrevLink         = "prev-link"           // prev_manifest_sha256 does not match the previous manifest
	DefectOffsets          = "offsets"             // offsets overlap, go backwards, or disagree with the object
	DefectMissingObject    = "missing-object"      // the pinned object version cannot be read
	DefectObjectHash       = "object-hash"         // object bytes do not match object_sha256
	DefectMerkleRoot       = "merkle-root"         // records do not hash to merkle_root
	DefectTree             = "tree"                // the partition tree does not match tree_size/tree_root
	DefectRetention        = "retention"           // no COMPLIANCE retention, or retention already expired
	DefectSignature        = "signature"           // a checkpoint signature does not verify
	DefectCheckpointChain  = "checkpoint-chain"    // checkpoint sequence gap or broken prev link
	DefectCheckpointShrink = "checkpoint-shrink"   // a partition's tree shrank between checkpoints
	DefectCheckpointHead   = "checkpoint-mismatch" // a signed head does not match the chain (fork or truncation)
	DefectAnchor           = "anchor"              // a checkpoint held outside the bucket is missing from it or differs
	DefectDuplicateID      = "duplicate-id"        // one audit event id is archived more than once
	DefectGap              = "gap"                 // a committed Kafka record is missing from the trail, or a chained offset is not a committed record
	DefectNoTrustedKey     = "no-trusted-key"      // nothing to check signatures with: pin a key
)

// Defect is one finding that makes a chain fail verification.
type Defect struct {
	Partition int32  `json:"partition"` // -1 for checkpoints and keys
	Key       string `json:"key,omitempty"`
	Kind      string `json:"kind"`
	Detail    string `json:"detail"`
}

func (d Defect) String() string {
	where := d.Key
	if where == "" {
		where = "-"
	}
	return fmt.Sprintf("%s: %s: %s", d.Kind, where, d.Detail)
}

// PartitionReport summarises one partition's chain.
type PartitionReport struct {
	Partition   int32  `json:"partition"`
	Topic       string `json:"topic"`
	Manifests   uint64 `json:"manifests"`
	Records     uint64 `json:"records"`
	FirstOffset int64  `json:"first_offset"`
	LastOffset  int64  `json:"last_offset"`
	TreeSize    uint64 `json:"tree_size"`
	TreeRoot    string `json:"tree_root"`
	// SignedTreeSize is the tree size signed by the latest checkpoint;
	// records beyond it are chained but not yet signed.
	SignedTreeSize uint64 `json:"signed_tree_size"`
	// Gaps counts holes in the partition's offsets (between records, within
	// and across batches) and GapOffsets the offsets they span. Kafka
	// transaction markers and aborted records explain gaps; with an
	// OffsetSource each gap is checked against the committed records still
	// in Kafka and UncheckedGaps counts those Kafka no longer holds.
	Gaps          int   `json:"gaps"`
	GapOffsets    int64 `json:"gap_offsets"`
	UncheckedGaps int   `json:"unchecked_gaps"`
	// GapsChecked is true when the gaps were checked against Kafka.
	GapsChecked bool `json:"gaps_checked"`
	Defects     int  `json:"defects"`
}

// Report is the result of Verify.
type Report struct {
	Partitions       []PartitionReport `json:"partitions"`
	Checkpoints      uint64            `json:"checkpoints"`
	LatestCheckpoint *Checkpoint       `json:"latest_checkpoint,omitempty"`
	// NewestAnchor is the newest trusted checkpoint obtained outside the
	// bucket (file, Kafka topic), if any was given.
	NewestAnchor *Checkpoint `json:"newest_anchor,omitempty"`
	// TrustedKeys are the pinned key ids signatures were checked with;
	// BucketKeys the ids published in the bucket (listed, not trusted).
	TrustedKeys []string `json:"trusted_keys"`
	BucketKeys  []string `json:"bucket_keys"`
	// DuplicateIDs counts audit event ids found more than once.
	DuplicateIDs int       `json:"duplicate_ids"`
	Defects      []Defect  `json:"defects"`
	Warnings     []string  `json:"warnings"`
	VerifiedAt   time.Time `json:"verified_at"`
}

// OK reports whether no defect was found.
func (r *Report) OK() bool { return len(r.Defects) == 0 }

// Empty reports whether the store held no trail at all (no manifest, no
// checkpoint) and no anchor said there should be one.
func (r *Report) Empty() bool {
	return len(r.Partitions) == 0 && r.Checkpoints == 0 && r.NewestAnchor == nil
}

// Progress is passed to the progress callback after each manifest.
type Progress struct {
	Partition int32
	Sequence  uint64
	Of        uint64 // manifests seen for the partition
	Records   uint64 // records verified so far in the partition
}

// VerifyOpt configures Verify.
type VerifyOpt func(*verifyCfg)

type verifyCfg struct {
	keys       Keyring
	bucketKeys bool
	anchors    []Anchor
	offsets    OffsetSource
	retention  bool
	progress   func(Progress)
	onBatch    func(m *Manifest, recs []Record) error
	skipObject func(m *Manifest) bool
	now        time.Time
	partitions []int32
	onLines    func(m *Manifest, lines [][]byte) // for Prove
	partial    bool                              // see PartialTrail
}

// TrustedKey pins a public key manifests and checkpoints may be signed with;
// give it once per key (the current one and those it replaced). Keys found
// in the store are never trusted unless InsecureTrustBucketKeys is given:
// whoever can write the bucket could have published them.
func TrustedKey(pubs ...ed25519.PublicKey) VerifyOpt {
	return func(c *verifyCfg) {
		for _, p := range pubs {
			c.keys.Add(p)
		}
	}
}

// InsecureTrustBucketKeys also trusts the public keys published in the
// store. Anyone with write access to the bucket can then forge checkpoints;
// the report says so.
func InsecureTrustBucketKeys() VerifyOpt { return func(c *verifyCfg) { c.bucketKeys = true } }

// Anchor is a checkpoint obtained outside the bucket (a file an operator
// exported, the compacted Kafka checkpoint topic), with where it came from.
type Anchor struct {
	Source string
	Bytes  []byte
}

// Anchors gives Verify checkpoints held outside the bucket. Each must be
// signed by a trusted key; the bucket must hold it byte for byte, and the
// chain must reach every head it signs: a chain or checkpoint sequence
// shorter than an anchor is a truncation even when the bucket's own newest
// checkpoints were removed too.
func Anchors(a ...Anchor) VerifyOpt {
	return func(c *verifyCfg) { c.anchors = append(c.anchors, a...) }
}

// OffsetSource reports which offsets of the audit topic hold committed
// records (Kafka read_committed), so Verify can tell offset gaps that
// transaction markers and aborted records explain from missing records.
type OffsetSource interface {
	// CommittedOffsets calls fn, in increasing order, with the offset of
	// every committed record of the partition in [from, to], and returns
	// the partition's log start offset (offsets below it are gone).
	CommittedOffsets(ctx context.Context, topic string, partition int32, from, to int64, fn func(offset int64)) (logStart int64, err error)
}

// CheckOffsets checks every partition's offsets against src.
func CheckOffsets(src OffsetSource) VerifyOpt { return func(c *verifyCfg) { c.offsets = src } }

// CheckRetention turns the Object Lock retention check on (default) or off.
func CheckRetention(on bool) VerifyOpt { return func(c *verifyCfg) { c.retention = on } }

// OnProgress is called after each manifest is checked.
func OnProgress(fn func(Progress)) VerifyOpt { return func(c *verifyCfg) { c.progress = fn } }

// OnBatch is called with each batch's records once the batch has verified
// cleanly (hashes, Merkle root, link); a batch with a defect is not passed.
// Returning an error stops verification.
func OnBatch(fn func(m *Manifest, recs []Record) error) VerifyOpt {
	return func(c *verifyCfg) { c.onBatch = fn }
}

// SkipObjects avoids fetching the objects of manifests for which fn returns
// true (export uses it to read only batches in its time range). Their
// manifests are still checked and linked.
func SkipObjects(fn func(m *Manifest) bool) VerifyOpt {
	return func(c *verifyCfg) { c.skipObject = fn }
}

// VerifyAt sets the time retention must still be in force at.
func VerifyAt(t time.Time) VerifyOpt { return func(c *verifyCfg) { c.now = t } }

// OnlyPartitions restricts verification to the given partitions (checkpoint
// heads of other partitions are then not cross-checked).
func OnlyPartitions(ps ...int32) VerifyOpt { return func(c *verifyCfg) { c.partitions = ps } }

// recordAt is where a record sits in the trail. Event ids are kept as
// truncated hashes so a trail of millions of events fits in memory.
type recordAt struct {
	partition int32
	offset    int64
}

type signedPoint struct {
	seq      uint64
	sha      string
	size     uint64
	root     string
	last     int64
	verified bool
}

type verifier struct {
	cfg      verifyCfg
	s        Store
	rep      *Report
	versions map[string][]ObjectVersion // key -> versions (delete markers included)
	points   map[int32]map[uint64]signedPoint
	heads    map[int32]uint64 // highest manifest sequence present
	retWarn  bool
	ids      map[[16]byte]recordAt // truncated SHA-256 of an audit event id -> where it was first seen
	offsets  map[int32][]int64     // chained offsets per partition, in chain order
}

// Verify walks every partition's chain and every checkpoint in s and reports
// all defects found. It returns an error only when the store cannot be read
// at all; tampering is reported in the Report.
func Verify(ctx context.Context, s Store, opts ...VerifyOpt) (*Report, error) {
	v := &verifier{
		cfg:      verifyCfg{retention: true, now: time.Now(), keys: Keyring{}},
		s:        s,
		rep:      &Report{Defects: []Defect{}, Warnings: []string{}, BucketKeys: []string{}},
		versions: map[string][]ObjectVersion{},
		points:   map[int32]map[uint64]signedPoint{},
		heads:    map[int32]uint64{},
		ids:      map[[16]byte]recordAt{},
		offsets:  map[int32][]int64{},
	}
	for _, o := range opts {
		o(&v.cfg)
	}
	v.rep.TrustedKeys = v.cfg.keys.IDs()
	v.rep.VerifiedAt = v.cfg.now.UTC()
	if err := s.Versions(ctx, Root, func(ov ObjectVersion) error {
		v.versions[ov.Key] = append(v.versions[ov.Key], ov)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("listing object versions: %w", err)
	}
	keys := make([]string, 0, len(v.versions))
	for k := range v.versions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if err := v.loadBucketKeys(ctx, keys); err != nil {
		return nil, err
	}
	parts := map[int32]map[uint64]bool{}
	referenced := map[string]bool{}
	for _, k := range keys {
		for _, ov := range v.versions[k] {
			if ov.DeleteMarker {
				v.defect(partitionOfKey(k), k, DefectDeleted, "a delete marker was written over this key (version "+ov.VersionID+")")
			}
		}
		if p, seq, ok := parseManifestKey(k); ok {
			if parts[p] == nil {
				parts[p] = map[uint64]bool{}
			}
			parts[p][seq] = true
		}
	}
	pids := make([]int32, 0, len(parts))
	for p := range parts {
		if len(v.cfg.partitions) == 0 || slices.Contains(v.cfg.partitions, p) {
			pids = append(pids, p)
		}
	}
	slices.Sort(pids)
	for _, p := range pids {
		if err := v.partition(ctx, p, parts[p], referenced); err != nil {
			return nil, err
		}
	}
	if err := v.checkpoints(ctx, len(v.cfg.partitions) == 0); err != nil {
		return nil, err
	}
	// Objects no manifest points at: a writer died between the object and
	// manifest PUT (the next writer adopts it), or junk in the bucket.
	if len(v.cfg.partitions) == 0 {
		for _, k := range keys {
			if _, _, _, ok := parseObjectKey(k); ok && !referenced[k] {
				v.rep.Warnings = append(v.rep.Warnings, "object "+k+" is not referenced by any manifest (a batch whose manifest was never written; the auditor adopts it on its next run)")
			}
		}
	}
	if err := v.checkOffsets(ctx); err != nil {
		return nil, err
	}
	for i := range v.rep.Partitions {
		pr := &v.rep.Partitions[i]
		for _, d := range v.rep.Defects {
			if d.Partition == pr.Partition {
				pr.Defects++
			}
		}
	}
	return v.rep, nil
}

func partitionOfKey(k string) int32 {
	if p, _, ok := parseManifestKey(k); ok {
		return p
	}
	if p, _, _, ok := parseObjectKey(k); ok {
		return p
	}
	return -1
}

func (v *verifier) defect(p int32, key, kind, detail string) {
	v.rep.Defects = append(v.rep.Defects, Defect{Partition: p, Key: key, Kind: kind, Detail: detail})
}

// loadBucketKeys lists the public keys published in the store. They are
// reported, and trusted only with InsecureTrustBucketKeys.
func (v *verifier) loadBucketKeys(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if !strings.HasPrefix(k, KeyPrefix) {
			continue
		}
		id := strings.TrimSuffix(strings.TrimPrefix(k, KeyPrefix), ".pem")
		v.rep.BucketKeys = append(v.rep.BucketKeys, id)
		if !v.cfg.bucketKeys {
			continue
		}
		b, _, err := v.s.Get(ctx, k, "")
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", k, err)
		}
		if pub, err := ParsePublicKey(b); err == nil && KeyID(pub) == id {
			v.cfg.keys.Add(pub)
		}
	}
	if v.cfg.bucketKeys {
		v.rep.Warnings = append(v.rep.Warnings, "INSECURE: keys published in the bucket were trusted; anyone with write access to the bucket could have published them and forged the trail: pin the key with --public-key or --trust-file")
	} else if len(v.rep.BucketKeys) > 0 {
		var untrusted []string
		for _, id := range v.rep.BucketKeys {
			if _, ok := v.cfg.keys[id]; !ok {
				untrusted = append(untrusted, id)
			}
		}
		if len(untrusted) > 0 {
			v.rep.Warnings = append(v.rep.Warnings, "keys published in the bucket but not pinned (not trusted): "+strings.Join(untrusted, ", "))
		}
	}
	v.rep.TrustedKeys = v.cfg.keys.IDs()
	if len(v.cfg.keys) == 0 && len(keys) > 0 {
		v.defect(-1, "", DefectNoTrustedKey, "no trusted public key: signatures of manifests and checkpoints cannot be checked; pin the auditor's key with --public-key or --trust-file")
	}
	return nil
}

// pickSigned chooses which version of a manifest or checkpoint key to read,
// from the chain itself rather than timestamps (some stores give every
// version the same LastModified): the one version if there is one, else the
// version whose content valid accepts (signed by a trusted key, in its
// place), else the first listed. Shadowing versions are reported.
func (v *verifier) pickSigned(ctx context.Context, p int32, key string, valid func([]byte) bool) (string, bool, error) {
	live := v.live(p, key, "")
	if len(live) <= 1 {
		if len(live) == 0 {
			return "", false, nil
		}
		return live[0].VersionID, true, nil
	}
	for _, ov := range live {
		b, _, err := v.s.Get(ctx, key, ov.VersionID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return "", false, fmt.Errorf("reading %s version %s: %w", key, ov.VersionID, err)
		}
		if valid(b) {
			return ov.VersionID, true, nil
		}
	}
	return live[0].VersionID, true, nil
}

// live returns the versions of key that are not delete markers, reporting
// shadowing when there is more than one.
func (v *verifier) live(p int32, key, pinned string) []ObjectVersion {
	var live []ObjectVersion
	for _, ov := range v.versions[key] {
		if !ov.DeleteMarker {
			live = append(live, ov)
		}
	}
	if len(live) > 1 {
		ids := make([]string, len(live))
		for i, ov := range live {
			ids[i] = ov.VersionID
		}
		what := "the chain pins the one signed by a trusted key"
		if pinned != "" {
			what = fmt.Sprintf("the chain pins %q", pinned)
		}
		v.defect(p, key, DefectShadowVersion, fmt.Sprintf("%d versions exist over a chained key (%s); %s", len(live), strings.Join(ids, ", "), what))
	}
	return live
}

// pick chooses which version of an object to read: the one the manifest
// pins. It reports shadowing versions.
func (v *verifier) pick(p int32, key, pinned string) (string, bool) {
	live := v.live(p, key, pinned)
	if pinned != "" {
		return pinned, true
	}
	if len(live) == 0 {
		return "", false
	}
	return live[0].VersionID, true
}

func (v *verifier) checkRetention(ctx context.Context, p int32, key, version string) error {
	if !v.cfg.retention {
		return nil
	}
	r, err := v.s.Retention(ctx, key, version)
	if errors.Is(err, ErrRetentionUnknown) {
		if !v.retWarn {
			v.retWarn = true
			v.rep.Warnings = append(v.rep.Warnings, "retention not checked: this store cannot report Object Lock retention (offline copy)")
		}
		return nil
	}
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			v.defect(p, key, DefectRetention, "no Object Lock retention on version "+version)
			return nil
		}
		return fmt.Errorf("reading retention of %s: %w", key, err)
	}
	switch {
	case r.Mode != "COMPLIANCE":
		v.defect(p, key, DefectRetention, fmt.Sprintf("retention mode %q on version %s, want COMPLIANCE", r.Mode, version))
	case !r.RetainUntil.After(v.cfg.now):
		v.defect(p, key, DefectRetention, fmt.Sprintf("retention of version %s expired at %s", version, r.RetainUntil.UTC().Format(time.RFC3339)))
	}
	return nil
}

func (v *verifier) partition(ctx context.Context, p int32, seqs map[uint64]bool, referenced map[string]bool) error {
	var maxSeq uint64
	for s := range seqs {
		maxSeq = max(maxSeq, s)
	}
	v.heads[p] = maxSeq
	pr := PartitionReport{Partition: p, FirstOffset: -1, LastOffset: -1}
	v.points[p] = map[uint64]signedPoint{}
	tree := NewTree()
	var prev *Manifest
	prevSHA := ""
	for seq := uint64(0); seq <= maxSeq; seq++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		key := ManifestKey(p, seq)
		if !seqs[seq] {
			v.defect(p, key, DefectMissingManifest, fmt.Sprintf("sequence %d has no manifest (chain broken)", seq))
			prev, prevSHA = nil, "" // cannot link across the hole
			continue
		}
		ver, ok, err := v.pickSigned(ctx, p, key, func(b []byte) bool {
			m, err := DecodeManifest(b)
			return err == nil && m.Partition == p && m.Sequence == seq && v.cfg.keys.VerifyManifest(m) == nil
		})
		if err != nil {
			return err
		}
		if !ok {
			prev, prevSHA = nil, ""
			continue // only delete markers: reported already
		}
		mb, _, err := v.s.Get(ctx, key, ver)
		if errors.Is(err, ErrNotFound) {
			v.defect(p, key, DefectMissingManifest, "manifest version "+ver+" cannot be read")
			prev, prevSHA = nil, ""
			continue
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", key, err)
		}
		if err := v.checkRetention(ctx, p, key, ver); err != nil {
			return err
		}
		msha := SHA256Hex(mb)
		m, err := DecodeManifest(mb)
		if err != nil {
			v.defect(p, key, DefectMalformed, err.Error())
			prev, prevSHA = nil, ""
			continue
		}
		pr.Manifests++
		// Records of a batch whose manifest no trusted key signed never
		// reach OnBatch (export): they may be forged.
		signed := v.cfg.keys.VerifyManifest(m) == nil
		if !signed && len(v.cfg.keys) > 0 {
			v.defect(p, key, DefectSignature, v.cfg.keys.VerifyManifest(m).Error()+" (appended or altered by someone without the auditor's key)")
		}
		if m.Partition != p || m.Sequence != seq {
			v.defect(p, key, DefectOffsets, fmt.Sprintf("manifest stored at partition %d sequence %d claims partition %d sequence %d (moved or reordered)", p, seq, m.Partition, m.Sequence))
		}
		if pr.Topic == "" {
			pr.Topic = m.Topic
		} else if m.Topic != pr.Topic {
			v.defect(p, key, DefectMalformed, fmt.Sprintf("topic %q differs from the chain's %q", m.Topic, pr.Topic))
		}
		switch {
		case seq == 0 && m.PrevManifestSHA256 != "":
			v.defect(p, key, DefectPrevLink, "first manifest links to a predecessor")
		case seq > 0 && prev != nil && m.PrevManifestSHA256 != prevSHA:
			v.defect(p, key, DefectPrevLink, fmt.Sprintf("prev_manifest_sha256 %s, previous manifest hashes to %s (altered or reordered)", short(m.PrevManifestSHA256), short(prevSHA)))
		}
		if m.FirstOffset > m.LastOffset {
			v.defect(p, key, DefectOffsets, fmt.Sprintf("first offset %d after last offset %d", m.FirstOffset, m.LastOffset))
		}
		if prev != nil && m.FirstOffset <= prev.LastOffset {
			v.defect(p, key, DefectOffsets, fmt.Sprintf("batch starts at offset %d, not after the previous batch's last offset %d (overlap or reorder)", m.FirstOffset, prev.LastOffset))
		}
		if want := ObjectKey(p, m.FirstOffset, m.LastOffset); m.ObjectKey != want {
			v.defect(p, key, DefectOffsets, fmt.Sprintf("object key %s, want %s", m.ObjectKey, want))
		}
		referenced[m.ObjectKey] = true
		batchOK := v.object(ctx, p, m, tree, signed)
		if tree.Size() != m.TreeSize || hex.EncodeToString(tree.Root()) != m.TreeRoot {
			v.defect(p, key, DefectTree, fmt.Sprintf("tree after batch has size %d root %s, manifest says size %d root %s", tree.Size(), short(hex.EncodeToString(tree.Root())), m.TreeSize, short(m.TreeRoot)))
			// Continue from what the manifest claims so one bad batch
			// does not cascade into every later one.
			if t, err := treeFromManifest(m); err == nil {
				tree = t
			}
		} else if slices.Compare(tree.rangeHex(), m.TreeRange) != 0 {
			v.defect(p, key, DefectTree, "tree_range does not match the recomputed compact range")
		}
		v.points[p][seq] = signedPoint{seq: seq, sha: msha, size: m.TreeSize, root: m.TreeRoot, last: m.LastOffset, verified: batchOK}
		if pr.FirstOffset < 0 {
			pr.FirstOffset = m.FirstOffset
		}
		pr.LastOffset = m.LastOffset
		pr.Records += uint64(m.RecordCount)
		prev, prevSHA = m, msha
		if v.cfg.progress != nil {
			v.cfg.progress(Progress{Partition: p, Sequence: seq, Of: maxSeq + 1, Records: pr.Records})
		}
	}
	pr.TreeSize = tree.Size()
	pr.TreeRoot = hex.EncodeToString(tree.Root())
	v.rep.Partitions = append(v.rep.Partitions, pr)
	return nil
}

// object checks one batch object and appends its leaves to tree. It reports
// whether the batch verified cleanly.
func (v *verifier) object(ctx context.Context, p int32, m *Manifest, tree *Tree, signed bool) bool {
	key := m.ObjectKey
	if _, ok := v.pick(p, key, m.ObjectVersionID); !ok {
		return false
	}
	if v.cfg.skipObject != nil && v.cfg.skipObject(m) {
		// Not fetched: trust the manifest's tree so later batches check.
		if t, err := treeFromManifest(m); err == nil {
			*tree = *t
		}
		return true
	}
	obj, _, err := v.s.Get(ctx, key, m.ObjectVersionID)
	if err != nil {
		v.defect(p, key, DefectMissingObject, fmt.Sprintf("pinned version %s: %v", m.ObjectVersionID, err))
		if t, terr := treeFromManifest(m); terr == nil {
			*tree = *t
		}
		return false
	}
	if err := v.checkRetention(ctx, p, key, m.ObjectVersionID); err != nil {
		v.rep.Warnings = append(v.rep.Warnings, err.Error())
	}
	ok := true
	if got := SHA256Hex(obj); got != m.ObjectSHA256 {
		v.defect(p, key, DefectObjectHash, fmt.Sprintf("object hashes to %s, manifest says %s", short(got), short(m.ObjectSHA256)))
		ok = false
	}
	lines, err := DecodeObject(obj)
	if err != nil {
		v.defect(p, key, DefectMalformed, err.Error())
		if t, terr := treeFromManifest(m); terr == nil {
			*tree = *t
		}
		return false
	}
	if len(lines) != m.RecordCount {
		v.defect(p, key, DefectOffsets, fmt.Sprintf("object holds %d records, manifest says %d", len(lines), m.RecordCount))
		ok = false
	}
	recs := make([]Record, 0, len(lines))
	last := int64(-1)
	for i, l := range lines {
		var r Record
		if err := json.Unmarshal(l, &r); err != nil {
			v.defect(p, key, DefectMalformed, fmt.Sprintf("record %d does not parse: %v", i, err))
			ok = false
			continue
		}
		if r.Partition != p {
			v.defect(p, key, DefectOffsets, fmt.Sprintf("record %d is from partition %d", i, r.Partition))
			ok = false
		}
		if len(r.Event) > 0 {
			var ev struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(r.Event, &ev) == nil && ev.ID != "" {
				sum := sha256.Sum256([]byte(ev.ID))
				id := [16]byte(sum[:16])
				if first, dup := v.ids[id]; dup {
					v.rep.DuplicateIDs++
					v.defect(p, key, DefectDuplicateID, fmt.Sprintf("the audit event at partition %d offset %d has the id of the one already archived at partition %d offset %d (the id itself is not printed: a forged record could carry anything)", p, r.Offset, first.partition, first.offset))
				} else {
					v.ids[id] = recordAt{p, r.Offset}
				}
			}
		}
		v.offsets[p] = append(v.offsets[p], r.Offset)
		if i > 0 && r.Offset <= last {
			v.defect(p, key, DefectOffsets, fmt.Sprintf("record %d has offset %d after offset %d", i, r.Offset, last))
			ok = false
		}
		if (i == 0 && r.Offset != m.FirstOffset) || (i == len(lines)-1 && r.Offset != m.LastOffset) {
			v.defect(p, key, DefectOffsets, fmt.Sprintf("record %d has offset %d, outside the manifest's %d..%d", i, r.Offset, m.FirstOffset, m.LastOffset))
			ok = false
		}
		last = r.Offset
		recs = append(recs, r)
	}
	leaves := LeafHashes(lines)
	if got := hex.EncodeToString(RootOf(leaves)); got != m.MerkleRoot {
		v.defect(p, key, DefectMerkleRoot, fmt.Sprintf("records hash to Merkle root %s, manifest says %s", short(got), short(m.MerkleRoot)))
		ok = false
	}
	tree.Append(leaves...)
	if v.cfg.onLines != nil {
		v.cfg.onLines(m, lines)
	}
	if ok && signed && v.cfg.onBatch != nil {
		if err := v.cfg.onBatch(m, recs); err != nil {
			v.rep.Warnings = append(v.rep.Warnings, "stopped: "+err.Error())
		}
	}
	return ok
}

// checkpointAt reads and authenticates the bucket's checkpoint at seq,
// choosing among versions by signature and place, never by time.
func (v *verifier) checkpointAt(ctx context.Context, seq uint64) (*Checkpoint, []byte, error) {
	key := CheckpointKey(seq)
	ver, ok, err := v.pickSigned(ctx, -1, key, func(b []byte) bool {
		c, err := DecodeCheckpoint(b)
		return err == nil && c.Sequence == seq && v.cfg.keys.VerifyCheckpoint(c) == nil
	})
	if err != nil || !ok {
		return nil, nil, err
	}
	b, _, err := v.s.Get(ctx, key, ver)
	if err != nil {
		v.defect(-1, key, DefectCheckpointChain, fmt.Sprintf("cannot read version %s: %v", ver, err))
		return nil, nil, nil
	}
	if err := v.checkRetention(ctx, -1, key, ver); err != nil {
		return nil, nil, err
	}
	c, err := DecodeCheckpoint(b)
	if err != nil {
		v.defect(-1, key, DefectMalformed, err.Error())
		return nil, nil, nil
	}
	return c, b, nil
}

func (v *verifier) checkpoints(ctx context.Context, allPartitions bool) error {
	seqs := map[uint64]bool{}
	var maxSeq uint64
	var any bool
	for k := range v.versions {
		rest, ok := strings.CutPrefix(k, CheckpointPrefix)
		if !ok {
			continue
		}
		var n uint64
		if _, err := fmt.Sscanf(rest, "%020d.json", &n); err != nil || CheckpointKey(n) != k {
			v.defect(-1, k, DefectMalformed, "unexpected key under the checkpoint prefix")
			continue
		}
		seqs[n], any = true, true
		maxSeq = max(maxSeq, n)
	}
	anchor := v.newestAnchor()
	if !any && anchor == nil {
		if len(v.rep.Partitions) > 0 {
			v.rep.Warnings = append(v.rep.Warnings, "no signed checkpoint yet: the chains are hash-linked but not signed")
		}
		return nil
	}
	lastSigned := map[int32]Head{}
	stored := map[uint64]string{} // sequence -> SHA-256 of the bucket's checkpoint
	prevSHA := ""
	var prevTime time.Time
	linked := false
	for seq := uint64(0); any && seq <= maxSeq; seq++ {
		key := CheckpointKey(seq)
		if !seqs[seq] {
			v.defect(-1, key, DefectCheckpointChain, fmt.Sprintf("checkpoint %d is missing", seq))
			linked = false
			continue
		}
		c, b, err := v.checkpointAt(ctx, seq)
		if err != nil {
			return err
		}
		if c == nil {
			linked = false
			continue
		}
		v.rep.Checkpoints++
		stored[seq] = SHA256Hex(b)
		if len(v.cfg.keys) > 0 {
			if err := v.cfg.keys.VerifyCheckpoint(c); err != nil {
				v.defect(-1, key, DefectSignature, err.Error())
			}
		}
		if c.Sequence != seq {
			v.defect(-1, key, DefectCheckpointChain, fmt.Sprintf("stored as checkpoint %d but claims sequence %d", seq, c.Sequence))
		}
		if seq == 0 && c.PrevSHA256 != "" || seq > 0 && linked && c.PrevSHA256 != prevSHA {
			v.defect(-1, key, DefectCheckpointChain, "prev_sha256 does not match the previous checkpoint")
		}
		if c.Time.Before(prevTime) {
			v.defect(-1, key, DefectCheckpointChain, "checkpoint time goes backwards")
		}
		seen := map[int32]bool{}
		for _, h := range c.Heads {
			seen[h.Partition] = true
			if old, ok := lastSigned[h.Partition]; ok && (h.TreeSize < old.TreeSize || h.Sequence < old.Sequence) {
				v.defect(h.Partition, key, DefectCheckpointShrink, fmt.Sprintf("partition %d tree size %d (sequence %d) after %d (sequence %d) in an earlier checkpoint", h.Partition, h.TreeSize, h.Sequence, old.TreeSize, old.Sequence))
			}
			lastSigned[h.Partition] = h
			v.checkHead(key, h, allPartitions)
		}
		for p := range lastSigned {
			if !seen[p] {
				v.defect(p, key, DefectCheckpointShrink, fmt.Sprintf("partition %d was signed before and is missing from checkpoint %d", p, seq))
			}
		}
		prevSHA, prevTime, linked = SHA256Hex(b), c.Time, true
		v.rep.LatestCheckpoint = c
	}
	if anchor != nil {
		v.checkAnchor(anchor, stored, any, maxSeq, allPartitions)
		for _, h := range anchor.c.Heads {
			if old, ok := lastSigned[h.Partition]; !ok || h.TreeSize > old.TreeSize {
				lastSigned[h.Partition] = h
			}
		}
	}
	for i := range v.rep.Partitions {
		pr := &v.rep.Partitions[i]
		if h, ok := lastSigned[pr.Partition]; ok {
			pr.SignedTreeSize = h.TreeSize
		}
	}
	return nil
}

// checkHead compares one signed head with the chain: a head beyond the
// chain is a truncation, a different manifest hash a fork.
func (v *verifier) checkHead(key string, h Head, allPartitions bool) {
	pts, checked := v.points[h.Partition]
	if !checked {
		if allPartitions {
			v.defect(h.Partition, key, DefectCheckpointHead, fmt.Sprintf("signed head of partition %d, which has no chain in the store (chain removed)", h.Partition))
		}
		return
	}
	pt, ok := pts[h.Sequence]
	switch {
	case !ok && h.Sequence > v.heads[h.Partition]:
		v.defect(h.Partition, key, DefectCheckpointHead, fmt.Sprintf("signed head sequence %d (offset %d, %d records) is beyond the chain's last manifest %d (chain truncated)", h.Sequence, h.LastOffset, h.TreeSize, v.heads[h.Partition]))
	case !ok:
		v.defect(h.Partition, key, DefectCheckpointHead, fmt.Sprintf("signed head sequence %d cannot be checked (manifest unreadable)", h.Sequence))
	case pt.sha != h.ManifestSHA256:
		v.defect(h.Partition, key, DefectCheckpointHead, fmt.Sprintf("signed manifest %d hash %s, stored manifest hashes to %s (forked or altered)", h.Sequence, short(h.ManifestSHA256), short(pt.sha)))
	case pt.size != h.TreeSize || pt.root != h.TreeRoot || pt.last != h.LastOffset:
		v.defect(h.Partition, key, DefectCheckpointHead, fmt.Sprintf("signed tree size %d root %s, chain has size %d root %s at sequence %d", h.TreeSize, short(h.TreeRoot), pt.size, short(pt.root), h.Sequence))
	}
}

type anchorCP struct {
	c      *Checkpoint
	sha    string
	source string
}

// newestAnchor authenticates the anchors and returns the newest; an anchor
// that does not parse or verify is a defect (it is evidence, not noise).
func (v *verifier) newestAnchor() *anchorCP {
	var best *anchorCP
	for _, a := range v.cfg.anchors {
		where := "anchor " + a.Source
		c, err := DecodeCheckpoint(a.Bytes)
		if err != nil {
			v.defect(-1, where, DefectAnchor, err.Error())
			continue
		}
		if err := v.cfg.keys.VerifyCheckpoint(c); err != nil {
			v.defect(-1, where, DefectAnchor, err.Error())
			continue
		}
		if best == nil || c.Sequence > best.c.Sequence {
			best = &anchorCP{c: c, sha: SHA256Hex(a.Bytes), source: a.Source}
		}
	}
	if best != nil {
		v.rep.NewestAnchor = best.c
	}
	return best
}

// checkAnchor checks the bucket against a checkpoint held outside it.
func (v *verifier) checkAnchor(a *anchorCP, stored map[uint64]string, any bool, maxSeq uint64, allPartitions bool) {
	where := "anchor " + a.source
	switch sha, ok := stored[a.c.Sequence]; {
	case !any || a.c.Sequence > maxSeq:
		newest := "none"
		if any {
			newest = fmt.Sprintf("%d", maxSeq)
		}
		v.defect(-1, where, DefectAnchor, fmt.Sprintf("checkpoint %d is held outside the bucket, the bucket's newest is %s: checkpoints were removed (trail truncated)", a.c.Sequence, newest))
	case !ok:
		v.defect(-1, where, DefectAnchor, fmt.Sprintf("checkpoint %d is held outside the bucket but cannot be read from it", a.c.Sequence))
	case sha != a.sha:
		v.defect(-1, where, DefectAnchor, fmt.Sprintf("checkpoint %d in the bucket hashes to %s, the copy held outside to %s (replaced)", a.c.Sequence, short(sha), short(a.sha)))
	}
	for _, h := range a.c.Heads {
		v.checkHead(where, h, allPartitions)
	}
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	if h == "" {
		return `""`
	}
	return h
}

// maxGapDefects bounds the gap defects listed per partition; the rest are
// summed up in one line.
const maxGapDefects = 20

// checkOffsets counts each partition's offset gaps and, with an
// OffsetSource, checks them against the committed records still in Kafka.
func (v *verifier) checkOffsets(ctx context.Context) error {
	if v.cfg.skipObject != nil {
		return nil // not every record was read
	}
	for i := range v.rep.Partitions {
		pr := &v.rep.Partitions[i]
		offs := slices.Clone(v.offsets[pr.Partition])
		slices.Sort(offs)
		offs = slices.Compact(offs)
		type gap struct{ from, to int64 }
		var gaps []gap
		for j := 1; j < len(offs); j++ {
			if offs[j] > offs[j-1]+1 {
				gaps = append(gaps, gap{offs[j-1] + 1, offs[j] - 1})
				pr.GapOffsets += offs[j] - offs[j-1] - 1
			}
		}
		pr.Gaps = len(gaps)
		if len(offs) == 0 {
			continue
		}
		if v.cfg.offsets == nil {
			pr.UncheckedGaps = pr.Gaps
			if pr.Gaps > 0 {
				v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf("partition %d: %d offset gaps (%d offsets) not checked against Kafka; transaction markers and aborted transactions explain gaps, a missing record does not: verify with Kafka reachable to tell them apart", pr.Partition, pr.Gaps, pr.GapOffsets))
			}
			continue
		}
		var missing, forged []int64
		j := 0
		from := int64(0)
		if v.cfg.partial {
			from = offs[0]
		}
		logStart, err := v.cfg.offsets.CommittedOffsets(ctx, pr.Topic, pr.Partition, from, offs[len(offs)-1], func(o int64) {
			for j < len(offs) && offs[j] < o {
				forged = append(forged, offs[j])
				j++
			}
			if j < len(offs) && offs[j] == o {
				j++
				return
			}
			missing = append(missing, o)
		})
		if err != nil {
			return fmt.Errorf("partition %d: reading committed offsets from Kafka: %w", pr.Partition, err)
		}
		for ; j < len(offs); j++ {
			forged = append(forged, offs[j])
		}
		// Chained offsets Kafka no longer holds cannot be checked.
		forged = slices.DeleteFunc(forged, func(o int64) bool { return o < logStart })
		pr.GapsChecked = true
		for _, g := range gaps {
			if g.to < logStart {
				pr.UncheckedGaps++
			}
		}
		if pr.UncheckedGaps > 0 {
			v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf("partition %d: %d offset gaps lie below Kafka's log start offset %d and can no longer be explained", pr.Partition, pr.UncheckedGaps, logStart))
		}
		v.reportOffsets(pr.Partition, missing, "committed record at offset%s %s is missing from the trail (unexplained gap)")
		v.reportOffsets(pr.Partition, forged, "chained record at offset%s %s is not a committed record in Kafka (forged or aborted)")
	}
	return nil
}

// reportOffsets reports offsets as gap defects, merged into ranges.
func (v *verifier) reportOffsets(p int32, offs []int64, format string) {
	n := 0
	for i := 0; i < len(offs); {
		j := i
		for j+1 < len(offs) && offs[j+1] == offs[j]+1 {
			j++
		}
		if n == maxGapDefects {
			v.defect(p, "", DefectGap, fmt.Sprintf("... and %d more offsets like the above", len(offs)-i))
			return
		}
		if i == j {
			v.defect(p, "", DefectGap, fmt.Sprintf(format, "", fmt.Sprint(offs[i])))
		} else {
			v.defect(p, "", DefectGap, fmt.Sprintf(format, "s", fmt.Sprintf("%d..%d", offs[i], offs[j])))
		}
		n++
		i = j + 1
	}
}
