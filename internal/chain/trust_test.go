package chain

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"
)

// forgeHead appends a batch for offsets 10..14 of partition 0 the way an
// insider with S3 write access (but not the auditor's key) can: correct
// links, Merkle root and tree, signed with a key of their own.
func forgeHead(t *testing.T, s Store, real Signer) {
	t.Helper()
	ctx := context.Background()
	attacker := testSigner(t)
	w, err := OpenPartition(ctx, s, "audit.events", 0, WriterSigner(attacker), WriterTrust(real.Public()))
	if err != nil {
		t.Fatal(err)
	}
	forged := recs(0, 10, 11, 12, 13, 14)
	for i := range forged {
		forged[i].Event = json.RawMessage(`{"id":"forged"}`)
	}
	if _, err := w.Append(ctx, forged); err != nil {
		t.Fatal(err)
	}
}

func TestForgedHeadIsRefused(t *testing.T) {
	ctx := context.Background()
	s, sg := newMemStore(), testSigner(t)
	buildChain(t, s, sg)
	forgeHead(t, s, sg)

	if _, err := OpenPartition(ctx, s, "audit.events", 0, WriterSigner(sg)); !errors.Is(err, ErrTampered) {
		t.Fatalf("resume from a forged head: %v, want ErrTampered", err)
	}
	if _, err := OpenPartition(ctx, s, "audit.events", 1, WriterSigner(sg)); err != nil {
		t.Fatalf("untouched partition refused: %v", err)
	}
	if _, err := WriteCheckpoint(ctx, s, sg, time.Now()); !errors.Is(err, ErrTampered) {
		t.Fatalf("checkpoint over a forged head: %v, want ErrTampered", err)
	}
	rep, err := Verify(ctx, s, TrustedKey(sg.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if kinds(rep)[DefectSignature] == 0 {
		t.Fatalf("forged head verifies: %v", rep.Defects)
	}
	// Export never hands out the forged records.
	var exported int
	Verify(ctx, s, TrustedKey(sg.Public()), OnBatch(func(_ *Manifest, rs []Record) error {
		for _, r := range rs {
			if string(r.Event) == `{"id":"forged"}` {
				t.Errorf("forged record at offset %d exported", r.Offset)
			}
			exported++
		}
		return nil
	}))
	if exported != 18 {
		t.Errorf("exported %d records, want the 18 real ones", exported)
	}
}

func TestUnsignedHeadIsRefused(t *testing.T) {
	ctx := context.Background()
	s, sg := newMemStore(), testSigner(t)
	buildChain(t, s, sg)
	// A copy of the real head moved one sequence up, signature stripped.
	b, _, _ := s.Get(ctx, ManifestKey(0, 2), "")
	m, _ := DecodeManifest(b)
	m.Sequence, m.PrevManifestSHA256, m.KeyID, m.Signature = 3, SHA256Hex(b), "", ""
	s.PutIfAbsent(ctx, ManifestKey(0, 3), m.Encode())
	if _, err := OpenPartition(ctx, s, "audit.events", 0, WriterSigner(sg)); !errors.Is(err, ErrTampered) {
		t.Fatalf("resume from an unsigned head: %v, want ErrTampered", err)
	}
}

func TestAnchorCatchesTruncationWithCheckpointRemoved(t *testing.T) {
	ctx := context.Background()
	s, sg := newMemStore(), testSigner(t)
	buildChain(t, s, sg)
	anchor, _, _ := s.Get(ctx, CheckpointKey(1), "")
	// Remove partition 0's last batch and manifest and the newest
	// checkpoint (a backend without lock, or versions deleted).
	s.remove(ManifestKey(0, 2))
	s.remove(ObjectKey(0, 6, 9))
	s.remove(CheckpointKey(1))
	rep, err := Verify(ctx, s, TrustedKey(sg.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("without an anchor the truncated trail is consistent, got %v", rep.Defects)
	}
	rep, err = Verify(ctx, s, TrustedKey(sg.Public()), Anchors(Anchor{Source: "file", Bytes: anchor}))
	if err != nil {
		t.Fatal(err)
	}
	k := kinds(rep)
	if k[DefectAnchor] == 0 || k[DefectCheckpointHead] == 0 {
		t.Fatalf("truncation not caught by the anchor: %v", rep.Defects)
	}
	if rep.NewestAnchor == nil || rep.NewestAnchor.Sequence != 1 {
		t.Fatalf("newest anchor %+v", rep.NewestAnchor)
	}
}

func TestAnchorMustMatchAndBeTrusted(t *testing.T) {
	ctx := context.Background()
	s, sg := newMemStore(), testSigner(t)
	buildChain(t, s, sg)
	good, _, _ := s.Get(ctx, CheckpointKey(1), "")
	rep, _ := Verify(ctx, s, TrustedKey(sg.Public()), Anchors(Anchor{Source: "kafka", Bytes: good}))
	if !rep.OK() {
		t.Fatalf("matching anchor: %v", rep.Defects)
	}
	// Same sequence, different content (signed by the real key: a fork).
	c, _ := DecodeCheckpoint(good)
	c.Time = c.Time.Add(time.Second)
	SignCheckpoint(ctx, sg, c)
	rep, _ = Verify(ctx, s, TrustedKey(sg.Public()), Anchors(Anchor{Source: "file", Bytes: c.Encode()}))
	if kinds(rep)[DefectAnchor] == 0 {
		t.Fatalf("differing anchor accepted: %v", rep.Defects)
	}
	// An anchor signed by an untrusted key is itself a defect.
	SignCheckpoint(ctx, testSigner(t), c)
	rep, _ = Verify(ctx, s, TrustedKey(sg.Public()), Anchors(Anchor{Source: "file", Bytes: c.Encode()}))
	if kinds(rep)[DefectAnchor] == 0 {
		t.Fatalf("foreign anchor accepted: %v", rep.Defects)
	}
}

func TestBucketKeysAreNotTrusted(t *testing.T) {
	ctx := context.Background()
	s, sg := newMemStore(), testSigner(t)
	buildChain(t, s, sg)
	// The attacker publishes their key and signs a checkpoint with it.
	attacker := testSigner(t)
	PublishPublicKey(ctx, s, EncodePublicKey(attacker.Public()), KeyID(attacker.Public()))
	w, _ := OpenPartition(ctx, s, "audit.events", 0, WriterSigner(attacker), WriterTrust(sg.Public()))
	if _, err := w.Append(ctx, recs(0, 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteCheckpoint(ctx, s, attacker, time.Now(), sg.Public()); err != nil {
		t.Fatal(err)
	}
	rep, _ := Verify(ctx, s)
	if kinds(rep)[DefectNoTrustedKey] == 0 || len(rep.BucketKeys) != 2 {
		t.Fatalf("no pinned key: defects %v bucket keys %v", rep.Defects, rep.BucketKeys)
	}
	rep, _ = Verify(ctx, s, TrustedKey(sg.Public()))
	if kinds(rep)[DefectSignature] < 2 { // the forged manifest and checkpoint
		t.Fatalf("attacker's key trusted: %v", rep.Defects)
	}
	rep, _ = Verify(ctx, s, InsecureTrustBucketKeys())
	if !rep.OK() || !slices.ContainsFunc(rep.Warnings, func(w string) bool { return len(w) > 8 && w[:8] == "INSECURE" }) {
		t.Fatalf("insecure mode: defects %v warnings %v", rep.Defects, rep.Warnings)
	}
}

func TestVersionChoiceIgnoresTimestamps(t *testing.T) {
	ctx := context.Background()
	s, sg := newMemStore(), testSigner(t)
	s.frozen = true
	buildChain(t, s, sg)
	// New (unsigned) versions over a manifest and a checkpoint, listed
	// first and with the same LastModified as the originals.
	b, _, _ := s.Get(ctx, ManifestKey(0, 1), "")
	m, _ := DecodeManifest(b)
	m.RecordCount, m.Signature = 99, ""
	s.add(ManifestKey(0, 1), m.Encode(), false)
	cb, _, _ := s.Get(ctx, CheckpointKey(0), "")
	c, _ := DecodeCheckpoint(cb)
	c.Heads[0].TreeSize = 1
	s.add(CheckpointKey(0), c.Encode(), false)
	rep, err := Verify(ctx, s, TrustedKey(sg.Public()))
	if err != nil {
		t.Fatal(err)
	}
	k := kinds(rep)
	if k[DefectShadowVersion] != 2 || len(rep.Defects) != 2 {
		t.Fatalf("want exactly the two shadowing versions (the signed originals read), got %v", rep.Defects)
	}
}

func TestDuplicateAuditIDs(t *testing.T) {
	ctx := context.Background()
	s, sg := newMemStore(), testSigner(t)
	for p := int32(0); p < 2; p++ {
		w, _ := OpenPartition(ctx, s, "audit.events", p, WriterSigner(sg))
		r := recs(p, 0, 1)
		r[1].Event = json.RawMessage(`{"id":"same-event"}`)
		if _, err := w.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	rep, _ := Verify(ctx, s, TrustedKey(sg.Public()))
	if kinds(rep)[DefectDuplicateID] != 1 || rep.DuplicateIDs != 1 {
		t.Fatalf("duplicate across partitions: %v", rep.Defects)
	}
}

// committed is an OffsetSource over a fixed set of committed offsets.
type committed struct {
	logStart int64
	offsets  map[int32][]int64
}

func (c committed) CommittedOffsets(_ context.Context, _ string, p int32, from, to int64, fn func(int64)) (int64, error) {
	for _, o := range c.offsets[p] {
		if o >= from && o <= to && o >= c.logStart {
			fn(o)
		}
	}
	return c.logStart, nil
}

func TestOffsetGapsAgainstKafka(t *testing.T) {
	ctx := context.Background()
	s, sg := newMemStore(), testSigner(t)
	buildChain(t, s, sg) // offsets 0,1,2,3,5,6,7,8,9 on partitions 0 and 1
	chained := []int64{0, 1, 2, 3, 5, 6, 7, 8, 9}
	rep, _ := Verify(ctx, s, TrustedKey(sg.Public()))
	if !rep.OK() || rep.Partitions[0].Gaps != 1 || rep.Partitions[0].UncheckedGaps != 1 || len(rep.Warnings) == 0 {
		t.Fatalf("offline gaps: %+v %v", rep.Partitions, rep.Warnings)
	}
	// Offset 4 is a transaction marker: explained.
	rep, _ = Verify(ctx, s, TrustedKey(sg.Public()), CheckOffsets(committed{offsets: map[int32][]int64{0: chained, 1: chained}}))
	if !rep.OK() || !rep.Partitions[0].GapsChecked || rep.Partitions[0].UncheckedGaps != 0 {
		t.Fatalf("explained gap: %v %+v", rep.Defects, rep.Partitions)
	}
	// Offset 4 holds a committed record on partition 1: missing.
	withFour := append(slices.Clone(chained[:4]), append([]int64{4}, chained[4:]...)...)
	rep, _ = Verify(ctx, s, TrustedKey(sg.Public()), CheckOffsets(committed{offsets: map[int32][]int64{0: chained, 1: withFour}}))
	if k := kinds(rep); k[DefectGap] != 1 || rep.Defects[0].Partition != 1 {
		t.Fatalf("missing record: %v", rep.Defects)
	}
	// Offset 7 is not a committed record on partition 0: forged.
	noSeven := slices.DeleteFunc(slices.Clone(chained), func(o int64) bool { return o == 7 })
	rep, _ = Verify(ctx, s, TrustedKey(sg.Public()), CheckOffsets(committed{offsets: map[int32][]int64{0: noSeven, 1: chained}}))
	if kinds(rep)[DefectGap] != 1 {
		t.Fatalf("forged offset: %v", rep.Defects)
	}
	// Kafka no longer holds offsets below 6: the gap cannot be explained.
	rep, _ = Verify(ctx, s, TrustedKey(sg.Public()), CheckOffsets(committed{logStart: 6, offsets: map[int32][]int64{0: chained, 1: chained}}))
	if !rep.OK() || rep.Partitions[0].UncheckedGaps != 1 {
		t.Fatalf("gap below log start: %v %+v", rep.Defects, rep.Partitions)
	}
}
