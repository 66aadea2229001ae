package tokenizer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/schemas"
)

// NewLoop returns the exactly-once loop running t over the raw payments
// topic and the tokenizer's repartition topic (see Processor). clientOpts
// connect to the cluster (kafkax.Opts); they also serve the state restores
// when t has no StateClientOpts. opts are passed to eos.New after the
// tokenizer's own (name, topics, partitioner), so they can override the
// group or transactional id.
func NewLoop(t *Tokenizer, clientOpts []kgo.Opt, opts ...eos.Opt) (*eos.Loop, error) {
	if len(t.cfg.stateOpts) == 0 {
		t.cfg.stateOpts = clientOpts
	}
	co := append(append([]kgo.Opt(nil), clientOpts...), kgo.RecordPartitioner(Partitioner(t.cfg.topics.Idempotency)))
	base := []eos.Opt{
		eos.Name(Name),
		eos.Topics(t.cfg.topics.PaymentsRaw, t.cfg.topics.RepartitionTopic()),
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
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return VaultRecord{}, fmt.Errorf("describing vault topic %s: %w", topic, err)
	}
	d, ok := td[topic]
	if !ok || d.Err != nil || len(d.Partitions) == 0 {
		return VaultRecord{}, fmt.Errorf("vault topic %s not found (run `pcistream topology apply`)", topic)
	}
	n := len(d.Partitions)
	part := int32(kgo.StickyKeyPartitioner(nil).ForTopic(topic).Partition(&kgo.Record{Key: []byte(tok)}, n))
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return VaultRecord{}, fmt.Errorf("listing vault offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return VaultRecord{}, fmt.Errorf("listing vault offsets: %w", err)
	}
	end, _ := ends.Lookup(topic, part)
	start, _ := starts.Lookup(topic, part)
	if end.Offset <= start.Offset {
		return VaultRecord{}, ErrNotInVault
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), clientOpts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().At(start.Offset)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return VaultRecord{}, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var found *kgo.Record
	for done := false; !done; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return VaultRecord{}, fmt.Errorf("reading vault partition %d: %w", part, err)
		}
		if err := fs.Err0(); err != nil {
			return VaultRecord{}, fmt.Errorf("reading vault partition %d: %w", part, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() && string(r.Key) == tok {
				found = r
			}
			if r.Offset+1 >= end.Offset {
				done = true
			}
		})
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
