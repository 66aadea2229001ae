package chain

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// FormatVersion is the version written in every manifest and checkpoint.
const FormatVersion = 1

// Key layout. Offsets and sequences are zero-padded to 20 digits so that
// lexical order (what S3 lists) is numeric order.
const (
	Root              = "audit/v1/"
	ObjectPrefix      = Root + "partition="
	ManifestPrefix    = Root + "manifests/partition="
	CheckpointPrefix  = Root + "checkpoints/"
	KeyPrefix         = Root + "keys/"
	manifestRootSlash = Root + "manifests/"
	// RearchiveRoot holds the trails 'pcistream replay auditor' writes
	// beside the live one, each under RearchiveRoot+<job>+"/" (Prefixed).
	RearchiveRoot = "replays/"
)

// ObjectKey is the deterministic key of the batch holding offsets first..last.
func ObjectKey(partition int32, first, last int64) string {
	return fmt.Sprintf("%s%d/%020d-%020d.jsonl.gz", ObjectPrefix, partition, first, last)
}

// ObjectPartitionPrefix is the prefix of every batch object of a partition.
func ObjectPartitionPrefix(partition int32) string {
	return fmt.Sprintf("%s%d/", ObjectPrefix, partition)
}

// ManifestKey is the key of the manifest with the given sequence number.
func ManifestKey(partition int32, seq uint64) string {
	return fmt.Sprintf("%s%d/%020d.json", ManifestPrefix, partition, seq)
}

// ManifestPartitionPrefix is the prefix of every manifest of a partition.
func ManifestPartitionPrefix(partition int32) string {
	return fmt.Sprintf("%s%d/", ManifestPrefix, partition)
}

// CheckpointKey is the key of the checkpoint with the given sequence number.
func CheckpointKey(seq uint64) string {
	return fmt.Sprintf("%s%020d.json", CheckpointPrefix, seq)
}

// PublicKeyKey is where the public key with the given id is published.
func PublicKeyKey(keyID string) string { return KeyPrefix + keyID + ".pem" }

// parseObjectKey returns the partition and offsets encoded in a batch key.
func parseObjectKey(key string) (partition int32, first, last int64, ok bool) {
	rest, found := strings.CutPrefix(key, ObjectPrefix)
	if !found {
		return 0, 0, 0, false
	}
	p, name, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	name, found = strings.CutSuffix(name, ".jsonl.gz")
	if !found {
		return 0, 0, 0, false
	}
	f, l, found := strings.Cut(name, "-")
	if !found {
		return 0, 0, 0, false
	}
	pi, err1 := strconv.ParseInt(p, 10, 32)
	fi, err2 := strconv.ParseInt(f, 10, 64)
	li, err3 := strconv.ParseInt(l, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, 0, false
	}
	return int32(pi), fi, li, true
}

// parseManifestKey returns the partition and sequence encoded in a manifest key.
func parseManifestKey(key string) (partition int32, seq uint64, ok bool) {
	rest, found := strings.CutPrefix(key, ManifestPrefix)
	if !found {
		return 0, 0, false
	}
	p, name, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	name, found = strings.CutSuffix(name, ".json")
	if !found {
		return 0, 0, false
	}
	pi, err1 := strconv.ParseInt(p, 10, 32)
	si, err2 := strconv.ParseUint(name, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return int32(pi), si, true
}

// Record is one line of a batch object: the Kafka coordinates of an audit
// event plus the event itself, already masked by the auditor. A record whose
// value could not be decoded keeps the decode error and a masked, base64 copy
// of the raw value so nothing is silently dropped from the trail.
type Record struct {
	Topic       string          `json:"topic"`
	Partition   int32           `json:"partition"`
	Offset      int64           `json:"offset"`
	KafkaTimeMs int64           `json:"kafka_time_ms"`
	TimeMs      int64           `json:"time_ms"` // event time; the Kafka time when the event cannot be decoded
	Key         string          `json:"key,omitempty"`
	Event       json.RawMessage `json:"event,omitempty"`
	DecodeError string          `json:"decode_error,omitempty"`
	RawMasked   string          `json:"raw_masked_b64,omitempty"`
}

// Manifest describes one batch object and links it to the previous batch of
// the same partition.
type Manifest struct {
	Version         int    `json:"v"`
	Topic           string `json:"topic"`
	Partition       int32  `json:"partition"`
	Sequence        uint64 `json:"sequence"`
	FirstOffset     int64  `json:"first_offset"`
	LastOffset      int64  `json:"last_offset"`
	RecordCount     int    `json:"record_count"`
	MinTimeMs       int64  `json:"min_time_ms"`
	MaxTimeMs       int64  `json:"max_time_ms"`
	ObjectKey       string `json:"object_key"`
	ObjectVersionID string `json:"object_version_id"`
	ObjectSHA256    string `json:"object_sha256"`
	ObjectSize      int64  `json:"object_size"`
	// MerkleRoot is the RFC 9162 root over this batch's records (leaf = one
	// JSON line without its newline).
	MerkleRoot string `json:"merkle_root"`
	// TreeSize and TreeRoot describe the partition-wide RFC 9162 tree over
	// every record of the partition up to and including this batch;
	// TreeRange is its compact range (the roots of its perfect subtrees,
	// left to right) so a writer can resume appending without re-reading.
	TreeSize  uint64   `json:"tree_size"`
	TreeRoot  string   `json:"tree_root"`
	TreeRange []string `json:"tree_range"`
	// PrevManifestSHA256 is the SHA-256 of the previous manifest's exact
	// bytes; empty for sequence 0.
	PrevManifestSHA256 string    `json:"prev_manifest_sha256"`
	WrittenAt          time.Time `json:"written_at"`
	Writer             string    `json:"writer,omitempty"`
	// KeyID and Signature authenticate the manifest with the auditor's
	// Ed25519 key (the one that signs checkpoints), so a head appended by
	// someone holding only S3 write access is refused on resume and fails
	// verify. Signature is base64 over SignedBytes().
	KeyID     string `json:"key_id,omitempty"`
	Signature string `json:"signature,omitempty"`
}

// manifestDomain separates manifest signatures from checkpoint signatures:
// one key signs both, and neither message can pass for the other.
const manifestDomain = "pcistream audit manifest v1\n"

// SignedBytes returns the exact message a manifest signature covers: the
// manifest as compact JSON with an empty signature (key_id included),
// prefixed by a domain separation string.
func (m *Manifest) SignedBytes() []byte {
	mm := *m
	mm.Signature = ""
	b, err := json.Marshal(mm)
	if err != nil {
		panic(err) // only plain fields: cannot fail
	}
	return append([]byte(manifestDomain), b...)
}

// Key returns the manifest's own key.
func (m *Manifest) Key() string { return ManifestKey(m.Partition, m.Sequence) }

// sameBatch reports whether two manifests describe the same batch in the same
// place of the chain (everything but the writer's identity and clock).
func (m *Manifest) sameBatch(o *Manifest) bool {
	a, b := *m, *o
	a.WrittenAt, b.WrittenAt = time.Time{}, time.Time{}
	a.Writer, b.Writer = "", ""
	a.KeyID, b.KeyID = "", ""
	a.Signature, b.Signature = "", ""
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// Encode returns the manifest's stored bytes (JSON with a trailing newline).
func (m *Manifest) Encode() []byte {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(err) // only plain fields: cannot fail
	}
	return append(b, '\n')
}

// DecodeManifest parses stored manifest bytes.
func DecodeManifest(b []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("malformed manifest: %w", err)
	}
	if m.Version != FormatVersion {
		return nil, fmt.Errorf("manifest format version %d, want %d", m.Version, FormatVersion)
	}
	return &m, nil
}

// Head is one partition's signed head in a checkpoint.
type Head struct {
	Topic          string `json:"topic"`
	Partition      int32  `json:"partition"`
	Sequence       uint64 `json:"sequence"`
	LastOffset     int64  `json:"last_offset"`
	ManifestSHA256 string `json:"manifest_sha256"`
	TreeSize       uint64 `json:"tree_size"`
	TreeRoot       string `json:"tree_root"`
}

// Checkpoint signs the heads of every partition at one point in time, in the
// spirit of CloudTrail digest files. Checkpoints form their own hash chain.
type Checkpoint struct {
	Version  int       `json:"v"`
	Sequence uint64    `json:"sequence"`
	Time     time.Time `json:"time"`
	// PrevSHA256 is the SHA-256 of the previous checkpoint's exact bytes;
	// empty for sequence 0.
	PrevSHA256 string `json:"prev_sha256"`
	Heads      []Head `json:"heads"` // sorted by partition
	// KeyID names the Ed25519 key: hex of the first 8 bytes of SHA-256 of
	// the raw 32-byte public key.
	KeyID string `json:"key_id"`
	// Signature is base64 Ed25519 over SignedBytes().
	Signature string `json:"signature"`
}

// SignedBytes returns the exact message the signature covers: the checkpoint
// encoded as compact JSON with an empty signature, prefixed by a domain
// separation string.
func (c *Checkpoint) SignedBytes() []byte {
	cc := *c
	cc.Signature = ""
	b, err := json.Marshal(cc)
	if err != nil {
		panic(err)
	}
	return append([]byte("pcistream audit checkpoint v1\n"), b...)
}

// Encode returns the checkpoint's stored bytes.
func (c *Checkpoint) Encode() []byte {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// DecodeCheckpoint parses stored checkpoint bytes.
func DecodeCheckpoint(b []byte) (*Checkpoint, error) {
	var c Checkpoint
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("malformed checkpoint: %w", err)
	}
	if c.Version != FormatVersion {
		return nil, fmt.Errorf("checkpoint format version %d, want %d", c.Version, FormatVersion)
	}
	return &c, nil
}

// SHA256Hex returns the lower-case hex SHA-256 of b.
func SHA256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Batch is an encoded batch object ready to store.
type Batch struct {
	Partition   int32
	FirstOffset int64
	LastOffset  int64
	MinTimeMs   int64
	MaxTimeMs   int64
	Lines       [][]byte // the JSON lines, without newlines
	LeafHashes  [][]byte // RFC 9162 leaf hash of each line
	MerkleRoot  []byte
	Object      []byte // gzip of the lines, each followed by '\n'
	SHA256      string // hex SHA-256 of Object
}

// Key returns the batch's deterministic object key.
func (b *Batch) Key() string { return ObjectKey(b.Partition, b.FirstOffset, b.LastOffset) }

// EncodeBatch encodes records of one partition, in strictly increasing offset
// order, into a batch object. The encoding is deterministic (no gzip header
// time or name), so a re-attempt of the same range yields the same bytes.
func EncodeBatch(recs []Record) (*Batch, error) {
	if len(recs) == 0 {
		return nil, fmt.Errorf("empty batch")
	}
	b := &Batch{
		Partition:   recs[0].Partition,
		FirstOffset: recs[0].Offset,
		LastOffset:  recs[len(recs)-1].Offset,
		MinTimeMs:   recs[0].TimeMs,
		MaxTimeMs:   recs[0].TimeMs,
	}
	for i := range recs {
		r := &recs[i]
		if r.Partition != b.Partition {
			return nil, fmt.Errorf("record at offset %d is from partition %d, batch is partition %d", r.Offset, r.Partition, b.Partition)
		}
		if i > 0 && r.Offset <= recs[i-1].Offset {
			return nil, fmt.Errorf("offsets not increasing in batch: %d after %d", r.Offset, recs[i-1].Offset)
		}
		line, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encoding record at offset %d: %w", r.Offset, err)
		}
		b.Lines = append(b.Lines, line)
		b.MinTimeMs = min(b.MinTimeMs, r.TimeMs)
		b.MaxTimeMs = max(b.MaxTimeMs, r.TimeMs)
	}
	b.LeafHashes = LeafHashes(b.Lines)
	b.MerkleRoot = RootOf(b.LeafHashes)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	for _, l := range b.Lines {
		zw.Write(l)
		zw.Write([]byte{'\n'})
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	b.Object = buf.Bytes()
	b.SHA256 = SHA256Hex(b.Object)
	return b, nil
}

// maxObjectBytes bounds decompression of a batch object (zip-bomb guard).
const maxObjectBytes = 1 << 30

// DecodeObject decompresses a batch object and splits it into lines.
func DecodeObject(obj []byte) ([][]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(obj))
	if err != nil {
		return nil, fmt.Errorf("batch object is not gzip: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxObjectBytes))
	if err != nil {
		return nil, fmt.Errorf("decompressing batch object: %w", err)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("batch object is empty")
	}
	if raw[len(raw)-1] != '\n' {
		return nil, fmt.Errorf("batch object does not end with a newline")
	}
	return bytes.Split(raw[:len(raw)-1], []byte{'\n'}), nil
}
