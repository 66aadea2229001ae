package tokenizer

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/schemas"
)

// This file holds the tokenizer's entry points for operators' jobs outside
// the live consumer group: a replay (both steps in one pass, against the
// job's own idempotency state) and a DLQ redrive (step 1 only, handing the
// source records to the live tokenizer through the repartition topic).

// ReplayProcessor runs the tokenizer's two steps on raw records in one pass,
// for a replay job (internal/replay). Its idempotency state is the
// Tokenizer's table, whose changelog must be the job's own topic (Topics
// with Idempotency set to it), never the live one: the job's decisions are
// made from what the job itself processed, and its changelog records are
// written in the job's transactions, so an interrupted job re-run restores
// exactly the state its committed transactions left and decides the same
// way. A key's state partition is the one the live loop would use
// (murmur2(key) over the repartition topic's partitions), so its outputs
// are the live loop's, byte for byte.
type ReplayProcessor struct {
	p     *Processor
	parts int
	hash  kgo.TopicPartitioner
	buf   []*kgo.Record
	dry   bool
}

var (
	_ eos.Processor = (*ReplayProcessor)(nil)
	_ eos.Ender     = (*ReplayProcessor)(nil)
)

// NewReplayProcessor returns the replay adapter for t; stateParts is the
// partition count of the live repartition topic (and of t's changelog).
func NewReplayProcessor(t *Tokenizer, stateParts int) *ReplayProcessor {
	return &ReplayProcessor{p: NewProcessor(t), parts: stateParts,
		hash: kgo.StickyKeyPartitioner(nil).ForTopic(t.cfg.topics.RepartitionTopic())}
}

// Restore restores every state partition from the job's changelog, and
// returns once all are usable.
func (r *ReplayProcessor) Restore(ctx context.Context) error {
	if len(r.p.t.cfg.stateOpts) == 0 {
		return fmt.Errorf("tokenizer replay: StateClientOpts are required")
	}
	parts := make([]int32, r.parts)
	for i := range parts {
		parts[i] = int32(i)
	}
	tbl := r.p.t.stateTable()
	tbl.Assign(parts, nil, nil)
	for _, p := range parts {
		if err := tbl.WaitRestored(ctx, p); err != nil {
			return fmt.Errorf("restore the replay job's state from %s: %w", tbl.Topic(), err)
		}
	}
	return nil
}

// Process implements eos.Processor: step 1 (route), then, for a keyed
// payment, step 2 (tokenize) at once in the state partition the live
// repartition would have chosen.
func (r *ReplayProcessor) Process(ctx context.Context, rec *kgo.Record, out *eos.Out) error {
	t := r.p.t
	routed, err := r.p.route(ctx, rec, r.buf[:0])
	r.buf = routed
	defer clear(r.buf)
	if err != nil {
		return err
	}
	for _, o := range routed {
		if o.Topic != t.cfg.topics.RepartitionTopic() {
			out.Emit(o)
			continue
		}
		part := int32(r.hash.Partition(o, r.parts))
		recs, err := t.transform(ctx, rec, part, nil)
		if err != nil {
			return err
		}
		for _, x := range recs {
			out.Emit(x)
		}
	}
	return nil
}

// EnsureReplayState creates a replay job's idempotency changelog,
// stateTopic (when it does not exist), with the partitions of the live
// repartition topic, and returns that count. The topic is compacted only,
// without time retention: its records carry the replayed input's event
// times, which are in the past by the nature of a replay, and a broker
// enforcing retention.ms would delete them at once (from under a resumed
// job, which then takes retries for first attempts). The window is the
// store's to apply, in stream time.
func EnsureReplayState(ctx context.Context, kopts []kgo.Opt, repartition, stateTopic string) (int, error) {
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return 0, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	td, err := adm.ListTopics(ctx, repartition)
	if err != nil {
		return 0, fmt.Errorf("describe %s: %w", repartition, err)
	}
	d, ok := td[repartition]
	if !ok || d.Err != nil || len(d.Partitions) == 0 {
		return 0, fmt.Errorf("the tokenizer's repartition topic %s does not exist: run 'pcistream topology apply' (or give --topic-idempotency as the live tokenizer has it)", repartition)
	}
	n := len(d.Partitions)
	cfgs := map[string]*string{"cleanup.policy": kadm.StringPtr("compact"), "retention.ms": kadm.StringPtr("-1")}
	resp, err := adm.CreateTopic(ctx, int32(n), -1, cfgs, stateTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return 0, fmt.Errorf("create the replay job's state topic %s (needs CREATE on the cluster or that topic): %w", stateTopic, err)
	}
	return n, nil
}

// DryRun makes the processor keep its state writes pending across batches
// instead of applying them (a dry run writes no changelog records, so they
// have no offsets): later batches still see them, nothing reaches the store.
func (r *ReplayProcessor) DryRun() { r.dry = true }

// Ended implements eos.Ender: a committed transaction's state writes are
// applied to the job's store.
func (r *ReplayProcessor) Ended(committed bool) {
	if !r.dry {
		r.p.Ended(committed)
	}
}

// Redriver is step 1 of the tokenizer for a DLQ redrive: it hands each
// source record, unchanged, to the live tokenizer's step 2 through the
// repartition topic, with its original coordinates, keyed by its
// idempotency key (or payment id). The live tokenizer then decides with its
// live idempotency state and its current configuration, exactly once, and
// its outputs (tokenized event, audit id) are those of the original record.
//
// A record that would be dead-lettered again is not handed over: the
// Redriver runs the tokenizer's input checks first (size against its own
// limit, decoding, required JSON fields, validation) and counts it in Still
// by reason instead. A second dead letter for the same source record would
// carry the same audit id as the first, which the audit trail must never
// hold twice. The redriver holds no key: it needs only the registry.
type Redriver struct {
	serde    *schemas.Serde
	repart   string
	maxBytes int
	required []string
	buf      []byte
	// Still counts the records left alone because they would fail again,
	// by reason code.
	Still map[string]int64
}

var _ eos.Processor = (*Redriver)(nil)

// NewRedriver returns a Redriver writing to repartitionTopic
// (config.Topics.RepartitionTopic), checking sizes against maxBytes (the
// live tokenizer's --max-record-bytes).
func NewRedriver(serde *schemas.Serde, repartitionTopic string, maxBytes int) (*Redriver, error) {
	req, err := requiredFields()
	if err != nil {
		return nil, fmt.Errorf("tokenizer redrive: %w", err)
	}
	return &Redriver{serde: serde, repart: repartitionTopic, maxBytes: maxBytes, required: req,
		buf: make([]byte, 0, 32), Still: map[string]int64{}}, nil
}

// check returns the payment and the reason code rec would be dead-lettered
// with now ("" when it would not), in the tokenizer's order; an error is a
// registry outage (retry, do not judge).
func (d *Redriver) check(ctx context.Context, rec *kgo.Record) (schemas.RawPayment, string, error) {
	var p schemas.RawPayment
	if len(rec.Value) > d.maxBytes {
		return p, ReasonOversize, nil
	}
	switch {
	case len(rec.Value) > 0 && rec.Value[0] == '{':
		var err error
		if p, err = schemas.DecodeRawPaymentJSON(rec.Value); err != nil {
			return p, ReasonMalformedJSON, nil
		}
		if len(missingJSONFields(rec.Value, d.required)) > 0 {
			return p, ReasonMissingField, nil
		}
	case len(rec.Value) > 0 && rec.Value[0] == 0:
		if err := d.serde.Decode(ctx, rec.Value, &p); err != nil {
			switch {
			case errors.Is(err, schemas.ErrUnknownSchemaID):
				return p, ReasonUnknownSchemaID, nil
			case errors.Is(err, schemas.ErrMalformed), errors.Is(err, schemas.ErrIncompatible):
				return p, ReasonMalformedAvro, nil
			}
			return p, "", fmt.Errorf("decoding %s[%d]@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
		}
	default:
		return p, ReasonUnknownEncoding, nil
	}
	_, digits, rej := validatePayment(&p, rec, d.buf)
	clear(digits)
	clear(d.buf[:cap(d.buf)])
	if rej != nil {
		return p, rej.code, nil
	}
	return p, "", nil
}

// Process implements eos.Processor.
func (d *Redriver) Process(ctx context.Context, rec *kgo.Record, out *eos.Out) error {
	pay, code, err := d.check(ctx, rec)
	if err != nil {
		return err
	}
	if code != "" {
		d.Still[code]++
		return nil
	}
	key := rec.Key
	if k := pay.IdempotencyKey; k != "" {
		key = []byte(k)
	} else if pay.PaymentID != "" {
		key = []byte(pay.PaymentID)
	}
	out.Emit(&kgo.Record{
		Topic:     d.repart,
		Key:       key,
		Value:     rec.Value,
		Timestamp: rec.Timestamp,
		Headers: []kgo.RecordHeader{
			{Key: hdrTopic, Value: []byte(rec.Topic)},
			{Key: hdrPartition, Value: fmt.Appendf(nil, "%d", rec.Partition)},
			{Key: hdrOffset, Value: fmt.Appendf(nil, "%d", rec.Offset)},
			{Key: hdrKey, Value: rec.Key},
		},
	})
	return nil
}
