package tokenizer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/schemas"
)

// NewLoop returns the exactly-once loop running t over the raw payments
// topic. clientOpts connect to the cluster (kafkax.Opts); they also serve the
// idempotency-state rebuild when t has no StateClientOpts. opts are passed
// to eos.New after the tokenizer's own (name, topics, partitioner), so they
// can override the group or transactional id.
func NewLoop(t *Tokenizer, clientOpts []kgo.Opt, opts ...eos.Opt) (*eos.Loop, error) {
	if len(t.cfg.stateOpts) == 0 {
		t.cfg.stateOpts = clientOpts
	}
	co := append(append([]kgo.Opt(nil), clientOpts...), kgo.RecordPartitioner(Partitioner(t.cfg.topics.Idempotency)))
	base := []eos.Opt{
		eos.Name(Name),
		eos.Topics(t.cfg.topics.PaymentsRaw),
		eos.ClientOpts(co...),
		eos.Logger(t.cfg.logger),
	}
	return eos.New(NewProcessor(t), append(base, opts...)...)
}

// ErrNotInVault is returned by LookupVault when the vault holds no entry for
// the token.
var ErrNotInVault = errors.New("token not found in the vault")

// VaultRecord is a vault entry and where it was read.
type VaultRecord struct {
	Entry     schemas.VaultEntry
	Partition int32
	Offset    int64
}

// LookupVault reads the latest committed vault entry for tok. The vault is
// keyed by token and partitioned by key (murmur2, like every Kafka client),
// so only the token's partition is read, read_committed, up to its last
// stable offset.
func LookupVault(ctx context.Context, clientOpts []kgo.Opt, serde *schemas.Serde, topic, tok string) (VaultRecord, error) {
	admCl, err := kgo.NewClient(clientOpts...)
	if err != nil {
		return VaultRecord{}, fmt.Errorf("kafka client: %w", err)
	}
	all, err := kafkax.StableRanges(ctx, kadm.NewClient(admCl), topic, false)
	admCl.Close()
	if err != nil || len(all) == 0 {
		return VaultRecord{}, fmt.Errorf("vault topic %s not found (run `pcistream topology apply`): %w", topic, err)
	}
	part := int32(kgo.StickyKeyPartitioner(nil).ForTopic(topic).Partition(&kgo.Record{Key: []byte(tok)}, len(all)))
	rng := all[part]
	if rng.End <= rng.Start {
		return VaultRecord{}, ErrNotInVault
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var found *kgo.Record
	err = kafkax.ReadRanges(ctx, clientOpts, topic, map[int32]kafkax.Range{part: rng}, func(r *kgo.Record) error {
		if string(r.Key) == tok {
			found = r
		}
		return nil
	})
	if err != nil {
		return VaultRecord{}, fmt.Errorf("reading vault partition %d: %w", part, err)
	}
	if found == nil || found.Value == nil {
		return VaultRecord{}, ErrNotInVault
	}
	var ve schemas.VaultEntry
	if err := serde.Decode(ctx, found.Value, &ve); err != nil {
		return VaultRecord{}, fmt.Errorf("decoding vault entry at offset %d: %w", found.Offset, err)
	}
	if ve.Token != tok {
		return VaultRecord{}, fmt.Errorf("vault entry at offset %d names another token", found.Offset)
	}
	return VaultRecord{Entry: ve, Partition: found.Partition, Offset: found.Offset}, nil
}
