package chain

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Partitions lists the partitions that have at least one manifest, by
// skip-scanning the manifest prefix (one short listing per partition).
func Partitions(ctx context.Context, s Store) ([]int32, error) {
	var out []int32
	start := ""
	for {
		var next int32 = -1
		err := s.List(ctx, ManifestPrefix, start, func(key string) error {
			rest := key[len(ManifestPrefix):]
			p, _, ok := strings.Cut(rest, "/")
			if !ok {
				return nil
			}
			n, err := strconv.ParseInt(p, 10, 32)
			if err != nil {
				return nil
			}
			next = int32(n)
			return errStop
		})
		if err != nil && !errors.Is(err, errStop) {
			return nil, fmt.Errorf("listing partitions: %w", err)
		}
		if next < 0 {
			break
		}
		out = append(out, next)
		// '~' sorts after every character a manifest key uses.
		start = ManifestPartitionPrefix(next) + "~"
	}
	slices.Sort(out)
	return out, nil
}

// LatestCheckpoint returns the newest checkpoint and its stored bytes; nil
// when none has been written yet.
func LatestCheckpoint(ctx context.Context, s Store) (*Checkpoint, []byte, error) {
	seq, ok, err := lastSequence(ctx, s, CheckpointKey, CheckpointPrefix, -1)
	if err != nil || !ok {
		return nil, nil, err
	}
	b, _, err := s.Get(ctx, CheckpointKey(seq), "")
	if err != nil {
		return nil, nil, fmt.Errorf("reading checkpoint %d: %w", seq, err)
	}
	c, err := DecodeCheckpoint(b)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: %w", CheckpointKey(seq), err)
	}
	return c, b, nil
}

// PublishPublicKey writes the signer's public key beside the checkpoints
// (idempotent; an existing different key at the same id is an error).
func PublishPublicKey(ctx context.Context, s Store, pub []byte, keyID string) error {
	key := PublicKeyKey(keyID)
	_, err := s.PutIfAbsent(ctx, key, pub)
	if errors.Is(err, ErrExists) {
		got, _, gerr := s.Get(ctx, key, "")
		if gerr != nil {
			return fmt.Errorf("reading published key %s: %w", key, gerr)
		}
		if string(got) != string(pub) {
			return fmt.Errorf("a different public key is published at %s", key)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("publishing public key %s: %w", key, err)
	}
	return nil
}

// WriteCheckpoint signs the current head of every partition in the store and
// writes the next checkpoint with a conditional put. It returns nil, nil when
// nothing changed since the latest checkpoint, and an error (writing nothing)
// if any head is behind what the latest checkpoint signed: a checkpoint's
// tree sizes never shrink. When another auditor instance wins the race for
// the sequence number, the error wraps ErrExists and the caller may retry.
//
// Nothing unauthenticated is signed: the previous checkpoint and every head
// manifest must be signed by the signer's key or one of trusted, else the
// error wraps ErrTampered.
func WriteCheckpoint(ctx context.Context, s Store, signer Signer, now time.Time, trusted ...ed25519.PublicKey) (*Checkpoint, error) {
	keys := NewKeyring(trusted...)
	keys.Add(signer.Public())
	prev, prevBytes, err := LatestCheckpoint(ctx, s)
	if err != nil {
		return nil, err
	}
	if prev != nil {
		if err := keys.VerifyCheckpoint(prev); err != nil {
			return nil, fmt.Errorf("refusing to extend the latest checkpoint in the bucket: %w: %w", err, ErrTampered)
		}
	}
	known := map[int32]Head{}
	if prev != nil {
		for _, h := range prev.Heads {
			known[h.Partition] = h
		}
	}
	parts, err := Partitions(ctx, s)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{Version: FormatVersion, Time: now.UTC()}
	changed := prev == nil
	for _, p := range parts {
		hint := int64(-1)
		if h, ok := known[p]; ok {
			hint = int64(h.Sequence)
		}
		seq, ok, err := lastSequence(ctx, s, func(n uint64) string { return ManifestKey(p, n) }, ManifestPartitionPrefix(p), hint)
		if err != nil {
			return nil, fmt.Errorf("partition %d: finding head: %w", p, err)
		}
		if !ok {
			continue
		}
		b, _, err := s.Get(ctx, ManifestKey(p, seq), "")
		if err != nil {
			return nil, fmt.Errorf("partition %d: reading head manifest: %w", p, err)
		}
		m, err := DecodeManifest(b)
		if err != nil {
			return nil, fmt.Errorf("partition %d: head manifest: %w: %w", p, err, ErrTampered)
		}
		if m.Partition != p || m.Sequence != seq {
			return nil, fmt.Errorf("partition %d: head manifest at sequence %d claims partition %d sequence %d: %w", p, seq, m.Partition, m.Sequence, ErrTampered)
		}
		if err := keys.VerifyManifest(m); err != nil {
			return nil, fmt.Errorf("refusing to sign partition %d's head: %w: %w", p, err, ErrTampered)
		}
		h := Head{Topic: m.Topic, Partition: p, Sequence: m.Sequence, LastOffset: m.LastOffset,
			ManifestSHA256: SHA256Hex(b), TreeSize: m.TreeSize, TreeRoot: m.TreeRoot}
		if old, ok := known[p]; ok {
			if h.TreeSize < old.TreeSize || h.Sequence < old.Sequence {
				return nil, fmt.Errorf("partition %d: head (sequence %d, tree size %d) is behind checkpoint %d (sequence %d, tree size %d): refusing to sign a shrinking tree",
					p, h.Sequence, h.TreeSize, prev.Sequence, old.Sequence, old.TreeSize)
			}
			if h != old {
				changed = true
			}
		} else {
			changed = true
		}
		c.Heads = append(c.Heads, h)
	}
	if prev != nil && len(c.Heads) < len(prev.Heads) {
		return nil, fmt.Errorf("checkpoint %d signed %d partitions, only %d found now: refusing to sign", prev.Sequence, len(prev.Heads), len(c.Heads))
	}
	if !changed {
		return nil, nil
	}
	if prev != nil {
		c.Sequence = prev.Sequence + 1
		c.PrevSHA256 = SHA256Hex(prevBytes)
	}
	if err := SignCheckpoint(ctx, signer, c); err != nil {
		return nil, err
	}
	if _, err := s.PutIfAbsent(ctx, CheckpointKey(c.Sequence), c.Encode()); err != nil {
		return nil, fmt.Errorf("writing checkpoint %d: %w", c.Sequence, err)
	}
	return c, nil
}
