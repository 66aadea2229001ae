package tokenizer

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/eos"
)

// Processor adapts a Tokenizer to the exactly-once loop (internal/eos): it
// implements eos.Processor, eos.Assigner (rebuild the idempotency state of
// newly assigned partitions), eos.Revoker and eos.Ender (apply the
// idempotency additions of a committed transaction, drop those of an aborted
// one).
type Processor struct {
	t   *Tokenizer
	buf []*kgo.Record
}

var (
	_ eos.Processor = (*Processor)(nil)
	_ eos.Assigner  = (*Processor)(nil)
	_ eos.Revoker   = (*Processor)(nil)
	_ eos.Ender     = (*Processor)(nil)
)

// NewProcessor returns the loop adapter for t.
func NewProcessor(t *Tokenizer) *Processor { return &Processor{t: t} }

// Tokenizer returns the wrapped tokenizer.
func (p *Processor) Tokenizer() *Tokenizer { return p.t }

// Process implements eos.Processor.
func (p *Processor) Process(ctx context.Context, rec *kgo.Record, out *eos.Out) error {
	var err error
	p.buf, err = p.t.Transform(ctx, rec, p.buf[:0])
	if err != nil {
		return err
	}
	for _, r := range p.buf {
		out.Emit(r)
	}
	clear(p.buf)
	return nil
}

// Assigned implements eos.Assigner: it reads the idempotency-state partitions
// matching the newly assigned input partitions, read_committed, up to their
// last stable offset, before any of their records is processed.
func (p *Processor) Assigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) error {
	parts := assigned[p.t.cfg.topics.PaymentsRaw]
	if len(parts) == 0 {
		return nil
	}
	if len(p.t.cfg.stateOpts) == 0 {
		return fmt.Errorf("tokenizer: no StateClientOpts: cannot rebuild idempotency state")
	}
	st, err := loadState(ctx, p.t.cfg.stateOpts, p.t.cfg.topics.Idempotency, p.t.cfg.topics.PaymentsRaw, parts, p.t.cfg.rebuildWait)
	if err != nil {
		return err
	}
	n := 0
	for part, m := range st {
		p.t.idem.set(part, m)
		n += len(m)
	}
	p.t.cfg.logger.Info("idempotency state rebuilt", "topic", p.t.cfg.topics.Idempotency, "partitions", parts, "keys", n)
	return nil
}

// Revoked implements eos.Revoker.
func (p *Processor) Revoked(_ context.Context, revoked map[string][]int32) {
	p.t.idem.drop(revoked[p.t.cfg.topics.PaymentsRaw])
}

// Ended implements eos.Ender.
func (p *Processor) Ended(committed bool) { p.t.idem.end(committed) }

// Partitioner is the producer partitioner the tokenizer's loop must use:
// records to the idempotency-state topic go to the partition set on them
// (the input record's partition: the topics are co-partitioned), everything
// else is partitioned by key like any Kafka client (murmur2). Pass it as
// eos.ClientOpts(kgo.RecordPartitioner(tokenizer.Partitioner(topics.Idempotency))).
func Partitioner(stateTopic string) kgo.Partitioner {
	return routePartitioner{state: stateTopic, manual: kgo.ManualPartitioner(), byKey: kgo.StickyKeyPartitioner(nil)}
}

type routePartitioner struct {
	state         string
	manual, byKey kgo.Partitioner
}

func (r routePartitioner) ForTopic(t string) kgo.TopicPartitioner {
	if t == r.state {
		return r.manual.ForTopic(t)
	}
	return r.byKey.ForTopic(t)
}
