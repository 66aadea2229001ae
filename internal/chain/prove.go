package chain

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// InclusionProof proves that one audit record is in a partition's tree as
// signed by a checkpoint (RFC 9162 section 2.1.3).
type InclusionProof struct {
	Partition  int32       `json:"partition"`
	Offset     int64       `json:"offset"`
	Record     string      `json:"record"`    // the exact leaf bytes (a JSON line, kept as a string so no re-encoding alters it)
	LeafHash   string      `json:"leaf_hash"` // SHA-256(0x00 || record)
	LeafIndex  uint64      `json:"leaf_index"`
	TreeSize   uint64      `json:"tree_size"`
	TreeRoot   string      `json:"tree_root"`
	Proof      []string    `json:"proof"` // audit path, hex
	Checkpoint *Checkpoint `json:"checkpoint"`
}

// Prove verifies the partition's chain and returns the inclusion proof of the
// record at offset against the latest signed checkpoint. The proof is
// checked before it is returned.
func Prove(ctx context.Context, s Store, partition int32, offset int64, opts ...VerifyOpt) (*InclusionProof, *Report, error) {
	var leaves [][]byte
	var found []byte
	index := uint64(0)
	opts = append(opts, OnlyPartitions(partition), func(c *verifyCfg) {
		c.onLines = func(m *Manifest, lines [][]byte) {
			for _, l := range lines {
				if found == nil {
					var r struct {
						Offset int64 `json:"offset"`
					}
					if json.Unmarshal(l, &r) == nil && r.Offset == offset {
						found, index = l, uint64(len(leaves))
					}
				}
				leaves = append(leaves, hasher.HashLeaf(l))
			}
		}
	})
	rep, err := Verify(ctx, s, opts...)
	if err != nil {
		return nil, nil, err
	}
	if !rep.OK() {
		return nil, rep, fmt.Errorf("partition %d does not verify (%d defects): no proof issued", partition, len(rep.Defects))
	}
	cp := rep.LatestCheckpoint
	if cp == nil {
		return nil, rep, fmt.Errorf("no signed checkpoint yet: run the auditor until it writes one")
	}
	var head *Head
	for i := range cp.Heads {
		if cp.Heads[i].Partition == partition {
			head = &cp.Heads[i]
		}
	}
	if head == nil {
		return nil, rep, fmt.Errorf("checkpoint %d does not sign partition %d yet", cp.Sequence, partition)
	}
	if found == nil {
		return nil, rep, fmt.Errorf("offset %d is not in partition %d's chain", offset, partition)
	}
	if index >= head.TreeSize {
		return nil, rep, fmt.Errorf("offset %d is chained (leaf %d) but not yet signed: checkpoint %d covers %d records; retry after the next checkpoint", offset, index, cp.Sequence, head.TreeSize)
	}
	p, err := InclusionPath(leaves, index, head.TreeSize)
	if err != nil {
		return nil, rep, err
	}
	root, err := hex.DecodeString(head.TreeRoot)
	if err != nil {
		return nil, rep, fmt.Errorf("checkpoint tree root: %w", err)
	}
	if err := VerifyInclusion(index, head.TreeSize, leaves[index], p, root); err != nil {
		return nil, rep, fmt.Errorf("self-check of the proof failed: %w", err)
	}
	out := &InclusionProof{Partition: partition, Offset: offset, Record: string(found), LeafHash: hex.EncodeToString(leaves[index]),
		LeafIndex: index, TreeSize: head.TreeSize, TreeRoot: head.TreeRoot, Checkpoint: cp}
	for _, h := range p {
		out.Proof = append(out.Proof, hex.EncodeToString(h))
	}
	return out, rep, nil
}

// Check verifies the proof on its own: the record's leaf hash, the audit
// path to the root, and the checkpoint signature under pub.
func (ip *InclusionProof) Check(pub []byte) error {
	if hex.EncodeToString(hasher.HashLeaf([]byte(ip.Record))) != ip.LeafHash {
		return fmt.Errorf("record does not hash to leaf_hash")
	}
	var head *Head
	for i := range ip.Checkpoint.Heads {
		if ip.Checkpoint.Heads[i].Partition == ip.Partition {
			head = &ip.Checkpoint.Heads[i]
		}
	}
	if head == nil || head.TreeSize != ip.TreeSize || head.TreeRoot != ip.TreeRoot {
		return fmt.Errorf("proof's tree does not match the checkpoint's head")
	}
	if err := VerifyCheckpointSignature(ip.Checkpoint, pub); err != nil {
		return err
	}
	root, _ := hex.DecodeString(ip.TreeRoot)
	leaf, _ := hex.DecodeString(ip.LeafHash)
	path := make([][]byte, len(ip.Proof))
	for i, s := range ip.Proof {
		b, err := hex.DecodeString(s)
		if err != nil {
			return fmt.Errorf("proof hash %d: %w", i, err)
		}
		path[i] = b
	}
	return VerifyInclusion(ip.LeafIndex, ip.TreeSize, leaf, path, root)
}
