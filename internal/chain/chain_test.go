package chain

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/testonly"
)

func TestRootMatchesRFC9162Vectors(t *testing.T) {
	leaves := testonly.LeafInputs()
	roots := testonly.RootHashes()
	hs := LeafHashes(leaves)
	for n := 1; n <= len(leaves); n++ {
		if got := RootOf(hs[:n]); !bytes.Equal(got, roots[n]) {
			t.Fatalf("root of %d leaves = %x, want %x", n, got, roots[n])
		}
	}
	if !bytes.Equal(RootOf(nil), testonly.EmptyRootHash()) {
		t.Fatal("empty root mismatch")
	}
	tr := NewTree()
	for i, h := range hs {
		tr.Append(h)
		if !bytes.Equal(tr.Root(), roots[i+1]) {
			t.Fatalf("incremental root at %d mismatch", i+1)
		}
	}
	for size := uint64(1); size <= uint64(len(hs)); size++ {
		for i := uint64(0); i < size; i++ {
			p, err := InclusionPath(hs, i, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(i, size, hs[i], p, roots[size]); err != nil {
				t.Fatalf("inclusion %d/%d: %v", i, size, err)
			}
		}
		for s1 := uint64(1); s1 <= size; s1++ {
			p, err := ConsistencyPath(hs, s1, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyConsistency(s1, size, p, roots[s1], roots[size]); err != nil {
				t.Fatalf("consistency %d..%d: %v", s1, size, err)
			}
		}
	}
}

func recs(p int32, offsets ...int64) []Record {
	out := make([]Record, len(offsets))
	for i, o := range offsets {
		ev, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("ev-%d-%d", p, o), "action": "tokenize"})
		out[i] = Record{Topic: "audit.events", Partition: p, Offset: o, KafkaTimeMs: 1000 + o, TimeMs: 1000 + o, Event: ev}
	}
	return out
}

func testSigner(t *testing.T) Signer {
	pemKey, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParsePrivateKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	return NewSigner(priv)
}

// buildChain writes 3 batches on partitions 0 and 1 with a checkpoint after
// the second batch and at the end.
func buildChain(t *testing.T, s Store, sg Signer) {
	t.Helper()
	ctx := context.Background()
	if err := PublishPublicKey(ctx, s, EncodePublicKey(sg.Public()), KeyID(sg.Public())); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 2; p++ {
		w, err := OpenPartition(ctx, s, "audit.events", p, WriterSigner(sg))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range [][]int64{{0, 1, 2}, {3, 5}} { // 4 is a txn marker
			if _, err := w.Append(ctx, recs(p, b...)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if c, err := WriteCheckpoint(ctx, s, sg, time.Now()); err != nil || c == nil {
		t.Fatalf("checkpoint: %v %v", c, err)
	}
	if c, err := WriteCheckpoint(ctx, s, sg, time.Now()); err != nil || c != nil {
		t.Fatalf("unchanged heads must not checkpoint again: %v %v", c, err)
	}
	for p := int32(0); p < 2; p++ {
		w, err := OpenPartition(ctx, s, "audit.events", p, WriterSigner(sg))
		if err != nil {
			t.Fatal(err)
		}
		if off, ok := w.NextOffset(); !ok || off != 6 {
			t.Fatalf("partition %d resumes at %d %v, want 6", p, off, ok)
		}
		if _, err := w.Append(ctx, recs(p, 6, 7, 8, 9)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := WriteCheckpoint(ctx, s, sg, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func kinds(r *Report) map[string]int {
	out := map[string]int{}
	for _, d := range r.Defects {
		out[d.Kind]++
	}
	return out
}

func TestRoundTripVerifyAndProve(t *testing.T) {
	ctx := context.Background()
	s, sg := newMemStore(), testSigner(t)
	buildChain(t, s, sg)
	rep, err := Verify(ctx, s, TrustedKey(sg.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("clean chain has defects: %v", rep.Defects)
	}
	if len(rep.Partitions) != 2 || rep.Partitions[0].Records != 9 || rep.Partitions[0].Manifests != 3 || rep.Checkpoints != 2 || rep.Partitions[1].SignedTreeSize != 9 {
		t.Fatalf("unexpected report: %+v checkpoints=%d", rep.Partitions, rep.Checkpoints)
	}
	var exported []int64
	if _, err := Verify(ctx, s, OnBatch(func(m *Manifest, rs []Record) error {
		for _, r := range rs {
			exported = append(exported, r.Offset)
		}
		return nil
	}), OnlyPartitions(1), TrustedKey(sg.Public())); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(exported) != "[0 1 2 3 5 6 7 8 9]" {
		t.Fatalf("exported offsets %v", exported)
	}
	ip, _, err := Prove(ctx, s, 1, 7, TrustedKey(sg.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if ip.LeafIndex != 6 || ip.TreeSize != 9 {
		t.Fatalf("proof index %d size %d", ip.LeafIndex, ip.TreeSize)
	}
	if err := ip.Check(sg.Public()); err != nil {
		t.Fatal(err)
	}
	ip.Record = strings.Replace(ip.Record, "tokenize", "tokenizX", 1)
	if ip.Check(sg.Public()) == nil {
		t.Fatal("altered record passed proof check")
	}
	if _, _, err := Prove(ctx, s, 1, 4, TrustedKey(sg.Public())); err == nil {
		t.Fatal("proof for an absent offset")
	}
}

func TestAppendIsIdempotentAndFenced(t *testing.T) {
	ctx := context.Background()
	s, sg := newMemStore(), testSigner(t)
	w1, _ := OpenPartition(ctx, s, "audit.events", 0, WriterSigner(sg))
	w2, _ := OpenPartition(ctx, s, "audit.events", 0, WriterSigner(sg)) // a zombie with the same view
	if _, err := w1.Append(ctx, recs(0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	// Same batch from the zombie: adopted, no fork, no duplicate.
	if _, err := w2.Append(ctx, recs(0, 0, 1)); err != nil {
		t.Fatalf("identical re-attempt: %v", err)
	}
	// A different batch at the same sequence: fenced.
	w3, _ := OpenPartition(ctx, s, "audit.events", 0, WriterSigner(sg))
	if _, err := w1.Append(ctx, recs(0, 2, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := w3.Append(ctx, recs(0, 2, 3, 4)); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie got %v, want ErrFenced", err)
	}
	// A conflicting object at the same key is never overwritten.
	w4, _ := OpenPartition(ctx, s, "audit.events", 0, WriterSigner(sg))
	bad := recs(0, 4, 5)
	bad[0].Key = "different"
	s.PutIfAbsent(ctx, ObjectKey(0, 4, 5), []byte("junk"))
	if _, err := w4.Append(ctx, bad); !errors.Is(err, ErrConflict) {
		t.Fatalf("got %v, want ErrConflict", err)
	}
	// Only the manifests written by w1 exist, and the chain verifies apart
	// from the junk object (unreferenced: a warning).
	rep, err := Verify(ctx, s, TrustedKey(sg.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Partitions[0].Manifests != 2 || len(rep.Warnings) == 0 {
		t.Fatalf("defects %v manifests %d warnings %v", rep.Defects, rep.Partitions[0].Manifests, rep.Warnings)
	}
}

func TestPendingObjectIsAdopted(t *testing.T) {
	ctx := context.Background()
	s, sg := newMemStore(), testSigner(t)
	w, _ := OpenPartition(ctx, s, "audit.events", 0, WriterSigner(sg))
	if _, err := w.Append(ctx, recs(0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	// The writer dies after the object PUT of the next batch.
	b, _ := EncodeBatch(recs(0, 2, 3, 4))
	s.PutIfAbsent(ctx, b.Key(), b.Object)
	w2, err := OpenPartition(ctx, s, "audit.events", 0, WriterSigner(sg))
	if err != nil {
		t.Fatal(err)
	}
	if end, ok := w2.PendingEnd(); !ok || end != 4 {
		t.Fatalf("pending end %d %v", end, ok)
	}
	if _, err := w2.Append(ctx, recs(0, 2, 3, 4)); err != nil {
		t.Fatal(err)
	}
	if _, ok := w2.PendingEnd(); ok {
		t.Fatal("pending not cleared")
	}
	rep, _ := Verify(ctx, s, TrustedKey(sg.Public()))
	if !rep.OK() || len(rep.Warnings) != 1 { // the only warning: no checkpoint
		t.Fatalf("defects %v warnings %v", rep.Defects, rep.Warnings)
	}
}

func TestTamperingDetected(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		tamper func(t *testing.T, s *memStore, sg Signer)
		want   string
	}{
		{"new version over object", func(t *testing.T, s *memStore, _ Signer) {
			s.add(ObjectKey(0, 3, 5), []byte("replaced"), false)
		}, DefectShadowVersion},
		{"delete marker on manifest", func(t *testing.T, s *memStore, _ Signer) {
			s.add(ManifestKey(1, 2), nil, true)
		}, DefectDeleted},
		{"manifest version removed", func(t *testing.T, s *memStore, _ Signer) {
			s.remove(ManifestKey(1, 2))
		}, DefectCheckpointHead},
		{"middle manifest removed", func(t *testing.T, s *memStore, _ Signer) {
			s.remove(ManifestKey(0, 1))
		}, DefectMissingManifest},
		{"manifests reordered", func(t *testing.T, s *memStore, _ Signer) {
			a, _, _ := s.Get(ctx, ManifestKey(0, 0), "")
			b, _, _ := s.Get(ctx, ManifestKey(0, 1), "")
			s.overwrite(ManifestKey(0, 0), b)
			s.overwrite(ManifestKey(0, 1), a)
		}, DefectPrevLink},
		{"manifest altered", func(t *testing.T, s *memStore, _ Signer) {
			b, _, _ := s.Get(ctx, ManifestKey(1, 1), "")
			m, _ := DecodeManifest(b)
			m.RecordCount = 1
			s.overwrite(ManifestKey(1, 1), m.Encode())
		}, DefectPrevLink},
		{"object rewritten in place", func(t *testing.T, s *memStore, _ Signer) {
			b, _ := EncodeBatch(recs(0, 0, 1, 2))
			alt := recs(0, 0, 1, 2)
			alt[1].Event = json.RawMessage(`{"id":"forged"}`)
			ab, _ := EncodeBatch(alt)
			_ = b
			s.overwrite(ObjectKey(0, 0, 2), ab.Object)
		}, DefectObjectHash},
		{"object and manifest hash rewritten", func(t *testing.T, s *memStore, _ Signer) {
			alt := recs(0, 6, 7, 8, 9)
			alt[0].Event = json.RawMessage(`{"id":"forged"}`)
			ab, _ := EncodeBatch(alt)
			s.overwrite(ObjectKey(0, 6, 9), ab.Object)
			mb, _, _ := s.Get(ctx, ManifestKey(0, 2), "")
			m, _ := DecodeManifest(mb)
			m.ObjectSHA256 = ab.SHA256
			m.ObjectSize = int64(len(ab.Object))
			s.overwrite(ManifestKey(0, 2), m.Encode())
		}, DefectMerkleRoot},
		{"bad signature", func(t *testing.T, s *memStore, _ Signer) {
			b, _, _ := s.Get(ctx, CheckpointKey(1), "")
			c, _ := DecodeCheckpoint(b)
			c.Heads[0].LastOffset = 99
			s.overwrite(CheckpointKey(1), c.Encode())
		}, DefectSignature},
		{"checkpoint by another key", func(t *testing.T, s *memStore, _ Signer) {
			b, _, _ := s.Get(ctx, CheckpointKey(1), "")
			c, _ := DecodeCheckpoint(b)
			SignCheckpoint(ctx, testSigner(t), c)
			s.overwrite(CheckpointKey(1), c.Encode())
		}, DefectSignature},
		{"shrinking checkpoint", func(t *testing.T, s *memStore, sg Signer) {
			b0, _, _ := s.Get(ctx, CheckpointKey(0), "")
			b1, _, _ := s.Get(ctx, CheckpointKey(1), "")
			c0, _ := DecodeCheckpoint(b0)
			c := &Checkpoint{Version: FormatVersion, Sequence: 2, Time: time.Now(), PrevSHA256: SHA256Hex(b1), Heads: c0.Heads}
			SignCheckpoint(ctx, sg, c)
			s.PutIfAbsent(ctx, CheckpointKey(2), c.Encode())
		}, DefectCheckpointShrink},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, sg := newMemStore(), testSigner(t)
			buildChain(t, s, sg)
			tc.tamper(t, s, sg)
			rep, err := Verify(ctx, s, TrustedKey(sg.Public()))
			if err != nil {
				t.Fatal(err)
			}
			if kinds(rep)[tc.want] == 0 {
				t.Fatalf("want a %s defect, got %v", tc.want, rep.Defects)
			}
		})
	}
}

func TestCheckpointRefusesShrinkingHead(t *testing.T) {
	ctx := context.Background()
	s, sg := newMemStore(), testSigner(t)
	buildChain(t, s, sg)
	s.remove(ManifestKey(0, 2))
	if _, err := WriteCheckpoint(ctx, s, sg, time.Now()); err == nil {
		t.Fatal("signed a head behind the previous checkpoint")
	}
}

func TestEncodeBatchDeterministic(t *testing.T) {
	a, _ := EncodeBatch(recs(3, 10, 11))
	b, _ := EncodeBatch(recs(3, 10, 11))
	if !bytes.Equal(a.Object, b.Object) || a.Key() != "audit/v1/partition=3/00000000000000000010-00000000000000000011.jsonl.gz" {
		t.Fatalf("not deterministic or bad key %s", a.Key())
	}
	lines, err := DecodeObject(a.Object)
	if err != nil || len(lines) != 2 || !bytes.Equal(lines[1], a.Lines[1]) {
		t.Fatalf("decode: %v", err)
	}
	if _, err := EncodeBatch(recs(3, 11, 10)); err == nil {
		t.Fatal("accepted decreasing offsets")
	}
	if hex.EncodeToString(a.MerkleRoot) == "" {
		t.Fatal("no root")
	}
}

func TestSignatureRoundTrip(t *testing.T) {
	sg := testSigner(t)
	pub, err := ParsePublicKey(EncodePublicKey(sg.Public()))
	if err != nil || !pub.Equal(sg.Public()) {
		t.Fatal(err)
	}
	c := &Checkpoint{Version: 1, Heads: []Head{{Partition: 0, TreeSize: 3}}}
	if err := SignCheckpoint(context.Background(), sg, c); err != nil {
		t.Fatal(err)
	}
	if err := VerifyCheckpointSignature(c, pub); err != nil {
		t.Fatal(err)
	}
	c.Heads[0].TreeSize = 4
	if VerifyCheckpointSignature(c, pub) == nil {
		t.Fatal("modified checkpoint verified")
	}
	_ = ed25519.PublicKeySize
}
