package tokenizer

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/eos"
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
		eos.OutputTopics(t.cfg.topics.PaymentsTokenized, t.cfg.topics.Vault, t.cfg.topics.PaymentsDLQ,
			t.cfg.topics.AuditEvents, t.cfg.topics.RepartitionTopic(), t.cfg.topics.Idempotency),
		eos.ClientOpts(co...),
		eos.Logger(t.cfg.logger),
	}
	return eos.New(NewProcessor(t), append(base, opts...)...)
}
