package chain

import (
	"crypto"
	_ "crypto/sha256" // registers SHA-256 for the RFC 9162 hasher
	"encoding/hex"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// hasher is the RFC 9162 (RFC 6962) SHA-256 hasher: leaf = H(0x00||data),
// node = H(0x01||left||right).
var hasher = rfc6962.New(crypto.SHA256)

var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// LeafHashes returns the RFC 9162 leaf hash of each line.
func LeafHashes(lines [][]byte) [][]byte {
	out := make([][]byte, len(lines))
	for i, l := range lines {
		out[i] = hasher.HashLeaf(l)
	}
	return out
}

// RootOf returns the RFC 9162 Merkle tree hash over the given leaf hashes.
func RootOf(leafHashes [][]byte) []byte {
	r := rangeFactory.NewEmptyRange(0)
	for _, h := range leafHashes {
		if err := r.Append(h, nil); err != nil {
			panic(err) // appending to an empty range cannot fail
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		panic(err)
	}
	if root == nil {
		return hasher.EmptyRoot()
	}
	return root
}

// Tree is a partition-wide append-only RFC 9162 tree held as a compact range:
// O(log n) hashes, enough to append and to compute the root.
type Tree struct{ r *compact.Range }

// NewTree returns an empty tree.
func NewTree() *Tree { return &Tree{r: rangeFactory.NewEmptyRange(0)} }

// treeFromManifest restores the tree recorded in a manifest.
func treeFromManifest(m *Manifest) (*Tree, error) {
	hs := make([][]byte, len(m.TreeRange))
	for i, s := range m.TreeRange {
		h, err := hex.DecodeString(s)
		if err != nil || len(h) != hasher.Size() {
			return nil, fmt.Errorf("manifest %s: bad tree_range hash %d", m.Key(), i)
		}
		hs[i] = h
	}
	r, err := rangeFactory.NewRange(0, m.TreeSize, hs)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: tree_range does not match tree_size %d: %w", m.Key(), m.TreeSize, err)
	}
	t := &Tree{r: r}
	if got := hex.EncodeToString(t.Root()); got != m.TreeRoot {
		return nil, fmt.Errorf("manifest %s: tree_range root %s does not match tree_root %s", m.Key(), got, m.TreeRoot)
	}
	return t, nil
}

// Clone returns an independent copy.
func (t *Tree) Clone() *Tree {
	hs := t.r.Hashes()
	cp := make([][]byte, len(hs))
	copy(cp, hs)
	r, err := rangeFactory.NewRange(0, t.r.End(), cp)
	if err != nil {
		panic(err)
	}
	return &Tree{r: r}
}

// Append adds leaf hashes.
func (t *Tree) Append(leafHashes ...[]byte) {
	for _, h := range leafHashes {
		if err := t.r.Append(h, nil); err != nil {
			panic(err)
		}
	}
}

// Size returns the number of leaves.
func (t *Tree) Size() uint64 { return t.r.End() }

// Root returns the tree hash.
func (t *Tree) Root() []byte {
	root, err := t.r.GetRootHash(nil)
	if err != nil {
		panic(err)
	}
	if root == nil {
		return hasher.EmptyRoot()
	}
	return root
}

// rangeHex returns the compact range hashes in hex.
func (t *Tree) rangeHex() []string {
	hs := t.r.Hashes()
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = hex.EncodeToString(h)
	}
	return out
}

// InclusionPath returns the RFC 9162 inclusion proof of leaf index in the
// tree of the first size leaves.
func InclusionPath(leaves [][]byte, index, size uint64) ([][]byte, error) {
	if size > uint64(len(leaves)) || index >= size {
		return nil, fmt.Errorf("leaf %d not in a tree of size %d (have %d leaves)", index, size, len(leaves))
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return rehash(nodes, leaves)
}

// ConsistencyPath returns the RFC 9162 consistency proof between the trees
// of the first size1 and size2 leaves.
func ConsistencyPath(leaves [][]byte, size1, size2 uint64) ([][]byte, error) {
	if size2 > uint64(len(leaves)) || size1 > size2 {
		return nil, fmt.Errorf("bad consistency range %d..%d (have %d leaves)", size1, size2, len(leaves))
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	return rehash(nodes, leaves)
}

func rehash(nodes proof.Nodes, leaves [][]byte) ([][]byte, error) {
	hs := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		begin, end := id.Coverage()
		hs[i] = RootOf(leaves[begin:end])
	}
	return nodes.Rehash(hs, hasher.HashChildren)
}

// VerifyInclusion checks an inclusion proof against a tree root.
func VerifyInclusion(index, size uint64, leafHash []byte, p [][]byte, root []byte) error {
	return proof.VerifyInclusion(hasher, index, size, leafHash, p, root)
}

// VerifyConsistency checks a consistency proof between two tree roots.
func VerifyConsistency(size1, size2 uint64, p [][]byte, root1, root2 []byte) error {
	return proof.VerifyConsistency(hasher, size1, size2, p, root1, root2)
}
