package chain

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrFenced is returned when another writer has already put a different
// manifest at the sequence this writer was about to take: the chain belongs to
// someone else now (a zombie after a rebalance, or a second auditor) and this
// writer must stop rather than fork it.
var ErrFenced = errors.New("fenced: another writer extended this partition's chain")

// ErrConflict is returned when a batch object already exists at the
// deterministic key with different content. Nothing is overwritten; an
// operator has to look (verify will show the details).
var ErrConflict = errors.New("a different batch object already exists at this key")

var errStop = errors.New("stop")

// PartitionWriter appends batches to one partition's chain. It is not safe
// for concurrent use; one goroutine owns a partition at a time.
type PartitionWriter struct {
	store     Store
	topic     string
	partition int32
	writer    string
	now       func() time.Time
	signer    Signer
	trust     Keyring

	head    *Manifest // nil for an empty chain
	headSHA string
	tree    *Tree

	// pendingFirst/pendingLast: a batch object after the head with no
	// manifest (the previous writer died between the object and manifest
	// PUTs). The next batch must cover exactly that range.
	pendingFirst, pendingLast int64
	hasPending                bool
}

// WriterOpt configures a PartitionWriter.
type WriterOpt func(*PartitionWriter)

// WriterName records who wrote each manifest (host, pod, instance id).
func WriterName(name string) WriterOpt { return func(w *PartitionWriter) { w.writer = name } }

// WriterSigner signs every manifest the writer appends and makes
// OpenPartition authenticate the head it resumes from: the head must be
// signed by this key or one given with WriterTrust, else OpenPartition fails
// with ErrTampered. A writer without a signer cannot append.
func WriterSigner(s Signer) WriterOpt {
	return func(w *PartitionWriter) {
		w.signer = s
		w.trust.Add(s.Public())
	}
}

// WriterTrust also accepts heads signed by these keys (the keys a rotated
// signing key replaced).
func WriterTrust(pubs ...ed25519.PublicKey) WriterOpt {
	return func(w *PartitionWriter) {
		for _, p := range pubs {
			w.trust.Add(p)
		}
	}
}

// WriterClock overrides time.Now for manifests' written_at.
func WriterClock(now func() time.Time) WriterOpt { return func(w *PartitionWriter) { w.now = now } }

// OpenPartition recovers a partition's chain head from the store. The store is
// the source of truth for where the writer resumes, but only once the head is
// authenticated: with WriterSigner or WriterTrust, a head that is unsigned,
// signed by an untrusted key, malformed or misplaced fails with ErrTampered
// (whoever holds S3 write access could have appended it). Without either
// option the head is read unauthenticated (read-only use).
func OpenPartition(ctx context.Context, s Store, topic string, partition int32, opts ...WriterOpt) (*PartitionWriter, error) {
	w := &PartitionWriter{store: s, topic: topic, partition: partition, now: time.Now, tree: NewTree(), trust: Keyring{}}
	for _, o := range opts {
		o(w)
	}
	seq, ok, err := lastSequence(ctx, s, func(n uint64) string { return ManifestKey(partition, n) }, ManifestPartitionPrefix(partition), -1)
	if err != nil {
		return nil, fmt.Errorf("partition %d: finding chain head: %w", partition, err)
	}
	objStart := ""
	if ok {
		key := ManifestKey(partition, seq)
		b, _, err := s.Get(ctx, key, "")
		if err != nil {
			return nil, fmt.Errorf("partition %d: reading head manifest %s: %w", partition, key, err)
		}
		m, err := DecodeManifest(b)
		if err != nil {
			return nil, fmt.Errorf("partition %d: head manifest %s: %w: %w", partition, key, err, ErrTampered)
		}
		if m.Partition != partition || m.Sequence != seq {
			return nil, fmt.Errorf("head manifest %s claims partition %d sequence %d: %w", key, m.Partition, m.Sequence, ErrTampered)
		}
		if len(w.trust) > 0 {
			if err := w.trust.VerifyManifest(m); err != nil {
				return nil, fmt.Errorf("partition %d: refusing to resume from head %s: %w: %w", partition, key, err, ErrTampered)
			}
		}
		if m.Topic != topic {
			return nil, fmt.Errorf("head manifest %s is for topic %q, not %q: use a separate bucket per audit topic", key, m.Topic, topic)
		}
		t, err := treeFromManifest(m)
		if err != nil {
			return nil, err
		}
		w.head, w.headSHA, w.tree = m, SHA256Hex(b), t
		objStart = m.ObjectKey
	}
	err = s.List(ctx, ObjectPartitionPrefix(partition), objStart, func(key string) error {
		p, f, l, ok := parseObjectKey(key)
		if !ok || p != partition {
			return nil
		}
		if w.head != nil && f <= w.head.LastOffset {
			return nil
		}
		w.pendingFirst, w.pendingLast, w.hasPending = f, l, true
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("partition %d: listing batch objects after the head: %w", partition, err)
	}
	return w, nil
}

// lastSequence finds the highest n such that key(n) exists, assuming keys
// are dense from 0 (which the chain guarantees unless tampered with; verify
// checks that). It probes exponentially then bisects, O(log n) reads, and
// finally lists after the found key to catch anything beyond a hole.
func lastSequence(ctx context.Context, s Store, key func(uint64) string, prefix string, known int64) (uint64, bool, error) {
	exists := func(n uint64) (bool, error) {
		_, _, err := s.Get(ctx, key(n), "")
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	var lo int64 = known // highest known to exist, -1 for none
	if lo < 0 {
		ok, err := exists(0)
		if err != nil {
			return 0, false, err
		}
		if !ok {
			// Nothing at 0; a listing still catches a chain that does not
			// start at 0 (verify reports it).
			return listLast(ctx, s, prefix, "", key)
		}
		lo = 0
	}
	step := int64(1)
	hi := lo + step // first candidate not yet known to be absent
	for {
		ok, err := exists(uint64(hi))
		if err != nil {
			return 0, false, err
		}
		if !ok {
			break
		}
		lo = hi
		step *= 2
		hi = lo + step
	}
	for hi-lo > 1 { // invariant: lo exists, hi does not
		mid := lo + (hi-lo)/2
		ok, err := exists(uint64(mid))
		if err != nil {
			return 0, false, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	n, ok, err := listLast(ctx, s, prefix, key(uint64(lo)), key)
	if err != nil {
		return 0, false, err
	}
	if ok && int64(n) > lo {
		return n, true, nil
	}
	return uint64(lo), true, nil
}

// listLast lists keys after startAfter and returns the highest sequence whose
// key round-trips through key().
func listLast(ctx context.Context, s Store, prefix, startAfter string, key func(uint64) string) (uint64, bool, error) {
	var last uint64
	found := false
	err := s.List(ctx, prefix, startAfter, func(k string) error {
		var n uint64
		if _, err := fmt.Sscanf(k[len(prefix):], "%020d.json", &n); err != nil || key(n) != k {
			return nil
		}
		last, found = n, true
		return nil
	})
	return last, found, err
}

// Head returns the current head manifest, nil for an empty chain.
func (w *PartitionWriter) Head() *Manifest { return w.head }

// Partition returns the partition this writer appends to.
func (w *PartitionWriter) Partition() int32 { return w.partition }

// NextOffset returns the Kafka offset to resume consuming from: the head's
// last offset + 1; ok is false for an empty chain (start at the earliest
// retained offset).
func (w *PartitionWriter) NextOffset() (offset int64, ok bool) {
	if w.head == nil {
		return 0, false
	}
	return w.head.LastOffset + 1, true
}

// PendingEnd reports a batch object written after the head without its
// manifest (a writer died in between). The next batch must end exactly at
// that offset so the re-attempt lands on the same key and is adopted.
func (w *PartitionWriter) PendingEnd() (last int64, ok bool) {
	return w.pendingLast, w.hasPending
}

// Append stores recs as the next batch: the object (locked, conditional),
// then its manifest (conditional on the sequence being free). It is
// idempotent: re-attempting the same records after an error or a crash adopts
// what is already stored when it matches byte for byte. Only on success does
// the writer's head advance.
func (w *PartitionWriter) Append(ctx context.Context, recs []Record) (*Manifest, error) {
	for i := range recs {
		recs[i].Topic = w.topic
	}
	b, err := EncodeBatch(recs)
	if err != nil {
		return nil, err
	}
	return w.AppendBatch(ctx, b)
}

// AppendBatch is Append for an already encoded batch.
func (w *PartitionWriter) AppendBatch(ctx context.Context, b *Batch) (*Manifest, error) {
	if w.signer == nil {
		return nil, fmt.Errorf("partition %d: no signing key: manifests must be signed (open the partition with WriterSigner)", w.partition)
	}
	if b.Partition != w.partition {
		return nil, fmt.Errorf("batch of partition %d given to the writer of partition %d", b.Partition, w.partition)
	}
	if w.head != nil && b.FirstOffset <= w.head.LastOffset {
		return nil, fmt.Errorf("partition %d: batch starts at offset %d, at or before the chain head's last offset %d", w.partition, b.FirstOffset, w.head.LastOffset)
	}
	key := b.Key()
	versionID, err := w.store.PutIfAbsent(ctx, key, b.Object)
	if errors.Is(err, ErrExists) {
		got, gotVersion, gerr := w.store.Get(ctx, key, "")
		if gerr != nil {
			return nil, fmt.Errorf("partition %d: batch object %s exists; reading it back: %w", w.partition, key, gerr)
		}
		if !bytes.Equal(got, b.Object) {
			return nil, fmt.Errorf("partition %d: %s: %w (stored sha256 %s, ours %s)", w.partition, key, ErrConflict, SHA256Hex(got), b.SHA256)
		}
		versionID, err = gotVersion, nil
	}
	if err != nil {
		return nil, fmt.Errorf("partition %d: writing batch object %s: %w", w.partition, key, err)
	}

	tree := w.tree.Clone()
	tree.Append(b.LeafHashes...)
	m := &Manifest{
		Version:         FormatVersion,
		Topic:           w.topic,
		Partition:       w.partition,
		FirstOffset:     b.FirstOffset,
		LastOffset:      b.LastOffset,
		RecordCount:     len(b.Lines),
		MinTimeMs:       b.MinTimeMs,
		MaxTimeMs:       b.MaxTimeMs,
		ObjectKey:       key,
		ObjectVersionID: versionID,
		ObjectSHA256:    b.SHA256,
		ObjectSize:      int64(len(b.Object)),
		MerkleRoot:      hex.EncodeToString(b.MerkleRoot),
		TreeSize:        tree.Size(),
		TreeRoot:        hex.EncodeToString(tree.Root()),
		TreeRange:       tree.rangeHex(),
		WrittenAt:       w.now().UTC(),
		Writer:          w.writer,
	}
	if w.head != nil {
		m.Sequence = w.head.Sequence + 1
		m.PrevManifestSHA256 = w.headSHA
	}
	if err := SignManifest(ctx, w.signer, m); err != nil {
		return nil, fmt.Errorf("partition %d: %w", w.partition, err)
	}
	mb := m.Encode()
	_, err = w.store.PutIfAbsent(ctx, m.Key(), mb)
	if errors.Is(err, ErrExists) {
		got, _, gerr := w.store.Get(ctx, m.Key(), "")
		if gerr != nil {
			return nil, fmt.Errorf("partition %d: manifest %s exists; reading it back: %w", w.partition, m.Key(), gerr)
		}
		other, derr := DecodeManifest(got)
		if derr != nil || !other.sameBatch(m) {
			return nil, fmt.Errorf("partition %d: manifest %s: %w", w.partition, m.Key(), ErrFenced)
		}
		if verr := w.trust.VerifyManifest(other); verr != nil {
			return nil, fmt.Errorf("partition %d: manifest %s: %w: %w", w.partition, m.Key(), verr, ErrTampered)
		}
		// Our own earlier attempt (its response was lost): adopt it.
		m, mb, err = other, got, nil
	}
	if err != nil {
		return nil, fmt.Errorf("partition %d: writing manifest %s: %w", w.partition, m.Key(), err)
	}
	w.head, w.headSHA, w.tree = m, SHA256Hex(mb), tree
	if w.hasPending && b.LastOffset >= w.pendingLast {
		w.hasPending = false
	}
	return m, nil
}

// HeadRecords reads the head batch by its pinned version and checks it against
// the head manifest (object SHA-256, record count, offsets, Merkle root). It
// returns the records' exact lines, so a caller can compare them with what
// the source still holds. A mismatch wraps ErrTampered; nil, nil for an empty
// chain.
func (w *PartitionWriter) HeadRecords(ctx context.Context) ([]Record, [][]byte, error) {
	m := w.head
	if m == nil {
		return nil, nil, nil
	}
	obj, _, err := w.store.Get(ctx, m.ObjectKey, m.ObjectVersionID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, fmt.Errorf("partition %d: head batch %s version %s is gone: %w", w.partition, m.ObjectKey, m.ObjectVersionID, ErrTampered)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("partition %d: reading head batch %s: %w", w.partition, m.ObjectKey, err)
	}
	if got := SHA256Hex(obj); got != m.ObjectSHA256 {
		return nil, nil, fmt.Errorf("partition %d: head batch %s: object hashes to %s, the signed manifest says %s: %w", w.partition, m.ObjectKey, short(got), short(m.ObjectSHA256), ErrTampered)
	}
	recs, lines, err := batchRecords(obj, m.FirstOffset, m.LastOffset)
	if err == nil && len(lines) != m.RecordCount {
		err = fmt.Errorf("%d records, the manifest says %d", len(lines), m.RecordCount)
	}
	if err == nil && hex.EncodeToString(RootOf(LeafHashes(lines))) != m.MerkleRoot {
		err = errors.New("records do not hash to the manifest's Merkle root")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("partition %d: head batch %s: %w: %w", w.partition, m.ObjectKey, err, ErrTampered)
	}
	return recs, lines, nil
}

// PendingRecords reads the batch object PendingEnd reports: no manifest
// vouches for it, so a caller must compare its records with the source before
// adopting it. A writer with other batch limits (a second deployment, a
// zombie) writes such objects too, so its size says nothing. An object that
// does not decode or whose records do not span its key's offsets wraps
// ErrTampered; nil, nil when there is none.
func (w *PartitionWriter) PendingRecords(ctx context.Context) ([]Record, [][]byte, error) {
	if !w.hasPending {
		return nil, nil, nil
	}
	key := ObjectKey(w.partition, w.pendingFirst, w.pendingLast)
	obj, _, err := w.store.Get(ctx, key, "")
	if err != nil {
		return nil, nil, fmt.Errorf("partition %d: reading batch object %s, which has no manifest: %w", w.partition, key, err)
	}
	recs, lines, err := batchRecords(obj, w.pendingFirst, w.pendingLast)
	if err != nil {
		return nil, nil, fmt.Errorf("partition %d: batch object %s, which has no manifest: %w: %w", w.partition, key, err, ErrTampered)
	}
	return recs, lines, nil
}

// batchRecords decodes a batch object whose records must span first..last
// in increasing offsets.
func batchRecords(obj []byte, first, last int64) ([]Record, [][]byte, error) {
	lines, err := DecodeObject(obj)
	if err != nil {
		return nil, nil, err
	}
	if len(lines) == 0 {
		return nil, nil, errors.New("no records")
	}
	recs := make([]Record, len(lines))
	for i, l := range lines {
		if err := json.Unmarshal(l, &recs[i]); err != nil {
			return nil, nil, fmt.Errorf("record %d does not parse: %v", i, err)
		}
		if i > 0 && recs[i].Offset <= recs[i-1].Offset {
			return nil, nil, fmt.Errorf("record %d has offset %d after offset %d", i, recs[i].Offset, recs[i-1].Offset)
		}
	}
	if recs[0].Offset != first || recs[len(recs)-1].Offset != last {
		return nil, nil, fmt.Errorf("records span offsets %d..%d, not %d..%d", recs[0].Offset, recs[len(recs)-1].Offset, first, last)
	}
	return recs, lines, nil
}
