package tokenizer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/state"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/schemas"
)

// ErrNotInVault is returned by a lookup when the vault holds no entry for
// the token.
var ErrNotInVault = errors.New("token not found in the vault")

// VaultRecord is a vault entry and where it was read.
type VaultRecord struct {
	Entry     schemas.VaultEntry
	Partition int32
	Offset    int64
}

// VaultIndex is a local index of the vault topic: token -> its latest vault
// record, in a state.Store (Pebble) whose changelog is the vault topic
// itself. A lookup catches the token's partition up from the index's
// checkpoint to the last stable offset (read_committed; only what was
// written since the last lookup) and reads one key, so its cost does not
// grow with the vault: the same at 1k and at 100M entries. The first lookup
// of a fresh index builds it (a full restore, at changelog read speed); keep
// its directory (--vault-index-dir) to pay that once.
//
// It holds PANs encrypted exactly as the vault topic does (AES-256-GCM under
// wrapped data keys): the same controls apply to its directory.
type VaultIndex struct {
	clientOpts []kgo.Opt
	store      *state.Store
	cl         *state.Changelog
	admin      *kgo.Client
	topic      string
	parts      int
	tmp        string
}

// OpenVaultIndex opens (creating if needed) the vault index in dir, or in a
// temporary directory removed by Close when dir is empty.
func OpenVaultIndex(ctx context.Context, dir string, clientOpts []kgo.Opt, topic string, cacheBytes int64) (*VaultIndex, error) {
	tmp := ""
	if dir == "" {
		d, err := os.MkdirTemp("", "pcistream-vault-index-")
		if err != nil {
			return nil, fmt.Errorf("vault index: %w", err)
		}
		dir, tmp = d, d
	}
	admin, err := kgo.NewClient(clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	td, err := kadm.NewClient(admin).ListTopics(ctx, topic)
	if err != nil {
		admin.Close()
		return nil, fmt.Errorf("describing vault topic %s: %w", topic, err)
	}
	d, ok := td[topic]
	if !ok || d.Err != nil || len(d.Partitions) == 0 {
		admin.Close()
		return nil, fmt.Errorf("vault topic %s not found (run `pcistream topology apply`)", topic)
	}
	store, err := state.Open(dir, state.StoreOpts{CacheBytes: cacheBytes})
	if err != nil {
		admin.Close()
		return nil, fmt.Errorf("vault index: %w", err)
	}
	return &VaultIndex{
		clientOpts: clientOpts, store: store, admin: admin, topic: topic, parts: len(d.Partitions), tmp: tmp,
		cl: &state.Changelog{Topic: topic, ClientOpts: clientOpts, Admin: admin, Encode: encodeIndexed},
	}, nil
}

// encodeIndexed keeps the record's offset with its value, for the audit
// event of a detokenization.
func encodeIndexed(dst []byte, r *kgo.Record) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Offset))
	return append(dst, r.Value...)
}

// Close closes the index (removing it if temporary).
func (v *VaultIndex) Close() error {
	v.admin.Close()
	err := v.store.Close()
	if v.tmp != "" {
		err = errors.Join(err, os.RemoveAll(v.tmp))
	}
	return err
}

// Store exposes the index's store (benchmarks).
func (v *VaultIndex) Store() *state.Store { return v.store }

// Partition is the vault partition of tok: the topic is keyed by token and
// partitioned by murmur2 of the key, like every Java client.
func (v *VaultIndex) Partition(tok string) int32 {
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic(v.topic).Partition(&kgo.Record{Key: []byte(tok)}, v.parts))
}

// CatchUp brings part of the index up to the vault's last stable offset.
func (v *VaultIndex) CatchUp(ctx context.Context, part int32) (state.Progress, error) {
	return v.cl.Restore(ctx, v.store, part, nil)
}

// catchUpDecided brings part of the index up to the vault's high
// watermark: every entry committed before the call, including those Kafka
// has not yet made visible at the last stable offset (state.Changelog
// HighWatermark). It waits for transactions open at the listing.
func (v *VaultIndex) catchUpDecided(ctx context.Context, part int32) error {
	cl := *v.cl
	cl.HighWatermark = true
	_, err := cl.Restore(ctx, v.store, part, nil)
	return err
}

// Lookup returns the latest committed vault entry for tok. A token not
// found at the last stable offset is looked up again after the index read
// up to the high watermark, so a token whose vault entry committed just
// before the call (its markers not yet written, or behind another writer's
// open transaction) is found; only misses pay that wait.
func (v *VaultIndex) Lookup(ctx context.Context, serde *schemas.Serde, tok string) (VaultRecord, error) {
	part := v.Partition(tok)
	if _, err := v.CatchUp(ctx, part); err != nil {
		return VaultRecord{}, fmt.Errorf("catching up the vault index of partition %d: %w", part, err)
	}
	e, ok, err := v.store.Get(part, []byte(tok))
	if err == nil && (!ok || len(e.Value) < 8) {
		if err = v.catchUpDecided(ctx, part); err != nil {
			return VaultRecord{}, fmt.Errorf("catching up the vault index of partition %d: %w", part, err)
		}
		e, ok, err = v.store.Get(part, []byte(tok))
	}
	if err != nil {
		return VaultRecord{}, err
	}
	if !ok || len(e.Value) < 8 {
		return VaultRecord{}, ErrNotInVault
	}
	off := int64(binary.BigEndian.Uint64(e.Value))
	var ve schemas.VaultEntry
	if err := serde.Decode(ctx, e.Value[8:], &ve); err != nil {
		return VaultRecord{}, fmt.Errorf("decoding vault entry at offset %d: %w", off, err)
	}
	if ve.Token != tok {
		return VaultRecord{}, fmt.Errorf("vault entry at offset %d names another token", off)
	}
	return VaultRecord{Entry: ve, Partition: part, Offset: off}, nil
}

// Tokens of one key version share the prefix "tok_v<N>_", so in the index
// they are one contiguous key range per partition.
func versionPrefix(version uint32) []byte {
	return []byte(token.Prefix + strconv.FormatUint(uint64(version), 10) + "_")
}

// LookupVault reads the latest committed vault entry for tok through a
// temporary index of its partition. For repeated lookups keep a VaultIndex.
func LookupVault(ctx context.Context, clientOpts []kgo.Opt, serde *schemas.Serde, topic, tok string) (VaultRecord, error) {
	ix, err := OpenVaultIndex(ctx, "", clientOpts, topic, 0)
	if err != nil {
		return VaultRecord{}, err
	}
	defer ix.Close()
	return ix.Lookup(ctx, serde, tok)
}
