package tokenizer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/schemas"
)

// Processor adapts a Tokenizer to the exactly-once loop (internal/eos). It
// runs two steps in one consumer group, like a Kafka Streams topology with a
// repartition topic:
//
//  1. route: a raw payment with an idempotency key (or payment id) is
//     forwarded unchanged to the repartition topic, keyed by that key, so
//     its partition is murmur2(key) whatever partitioner its producer used;
//     the input coordinates travel in headers. Payments without a key, and
//     input that does not decode, need no state and are handled at once.
//  2. tokenize: a repartitioned payment is tokenized against the state
//     partition of the same number, with its original coordinates, so its
//     outputs are the ones a direct run would produce (audit ids, context
//     ids and source offsets come from payments.raw).
//
// Both steps are consume-transform-produce in the loop's transactions, so a
// payment is forwarded exactly once and tokenized exactly once.
//
// It implements eos.AssignListener (restore state partitions as soon as they
// are assigned, pausing them until restored; cancel restores of revoked
// ones) and eos.Ender (apply a committed transaction's state writes).
type Processor struct {
	t      *Tokenizer
	repart string // the repartition topic's name, built once (not per record)
	rawID  int    // schema id whose routing key avroKey reads, or -1
	buf    []*kgo.Record
	// srcTopic is the last source topic name read by original.
	srcTopic string
}

var (
	_ eos.Processor      = (*Processor)(nil)
	_ eos.AssignListener = (*Processor)(nil)
	_ eos.Ender          = (*Processor)(nil)
	_ eos.BatchStarter   = (*Processor)(nil)
)

// Headers carrying a repartitioned record's input coordinates.
const (
	hdrTopic     = "pcistream.src.topic"
	hdrPartition = "pcistream.src.partition"
	hdrOffset    = "pcistream.src.offset"
	hdrKey       = "pcistream.src.key"
)

// NewProcessor returns the loop adapter for t.
func NewProcessor(t *Tokenizer) *Processor {
	return &Processor{t: t, repart: t.cfg.topics.RepartitionTopic(), rawID: rawKeyPrefix(t.serde)}
}

// Tokenizer returns the wrapped tokenizer.
func (p *Processor) Tokenizer() *Tokenizer { return p.t }

// Process implements eos.Processor.
func (p *Processor) Process(ctx context.Context, rec *kgo.Record, out *eos.Out) error {
	var err error
	if rec.Topic == p.repart {
		p.buf, err = p.tokenize(ctx, rec, p.buf[:0])
	} else {
		p.buf, err = p.route(ctx, rec, p.buf[:0])
	}
	if err != nil {
		return err
	}
	for _, r := range p.buf {
		out.Emit(r)
	}
	clear(p.buf)
	return nil
}

// StartBatch implements eos.BatchStarter: the state partitions of the
// batch's repartitioned records are restored and settled (which may wait for
// the previous owner's commit to reach them) before its transaction starts.
func (p *Processor) StartBatch(ctx context.Context, fetches kgo.Fetches) error {
	var err error
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if err == nil && fp.Topic == p.repart && len(fp.Records) > 0 {
			err = p.t.stateTable().WaitRestored(ctx, fp.Partition)
		}
	})
	return err
}

// route is step 1.
func (p *Processor) route(ctx context.Context, rec *kgo.Record, dst []*kgo.Record) ([]*kgo.Record, error) {
	t := p.t
	if len(rec.Value) > t.cfg.maxBytes {
		return t.transform(ctx, rec, -1, dst) // DLQ
	}
	if key, ok := p.avroKey(rec.Value); ok {
		return p.forward(rec, key, dst), nil
	}
	var pay schemas.RawPayment
	switch {
	case len(rec.Value) > 0 && rec.Value[0] == '{':
		var err error
		if pay, err = schemas.DecodeRawPaymentJSON(rec.Value); err != nil {
			return t.transform(ctx, rec, -1, dst)
		}
	case len(rec.Value) > 0 && rec.Value[0] == 0:
		if err := t.serde.Decode(ctx, rec.Value, &pay); err != nil {
			return t.transform(ctx, rec, -1, dst) // DLQ, or a retryable error
		}
	default:
		return t.transform(ctx, rec, -1, dst)
	}
	key := pay.IdempotencyKey
	if key == "" {
		key = pay.PaymentID
	}
	if key == "" {
		// No key: nothing to deduplicate, no state touched. The full
		// transform runs (its decoding checks, e.g. required JSON fields,
		// are the tokenizer's, not the router's).
		return t.transform(ctx, rec, -1, dst)
	}
	return p.forward(rec, key, dst), nil
}

// forward appends rec re-keyed by key for the repartition topic, its
// coordinates in headers.
func (p *Processor) forward(rec *kgo.Record, key string, dst []*kgo.Record) []*kgo.Record {
	// One allocation for the record, its headers and their numbers.
	type routed struct {
		rec  kgo.Record
		hdrs [4]kgo.RecordHeader
		num  [40]byte
	}
	r := &routed{}
	part := strconv.AppendInt(r.num[:0], int64(rec.Partition), 10)
	off := strconv.AppendInt(part[len(part):], rec.Offset, 10)
	r.hdrs = [4]kgo.RecordHeader{
		{Key: hdrTopic, Value: []byte(rec.Topic)},
		{Key: hdrPartition, Value: part},
		{Key: hdrOffset, Value: off},
		{Key: hdrKey, Value: rec.Key},
	}
	r.rec = kgo.Record{Topic: p.repart, Key: []byte(key), Value: rec.Value, Timestamp: rec.Timestamp, Headers: r.hdrs[:]}
	return append(dst, &r.rec)
}

// avroKey reads the routing key (idempotency_key, else payment_id) of an
// Avro raw payment written with the tokenizer's own registered schema,
// without decoding the rest: those are its first two fields, both strings
// (checked at start, see rawKeyPrefix). ok is false for anything else (JSON,
// another schema id, bytes that do not parse, no key), which route then
// decodes in full. A payment whose key reads but whose rest is malformed is
// forwarded and dead-lettered by the tokenize step, with its original
// coordinates: the same DLQ record and audit event.
func (p *Processor) avroKey(v []byte) (string, bool) {
	if p.rawID < 0 || len(v) < 5 || v[0] != 0 || int(binary.BigEndian.Uint32(v[1:5])) != p.rawID {
		return "", false
	}
	v = v[5:]
	var fields [2][]byte
	for i := range fields {
		n, w := binary.Varint(v) // Avro longs are zig-zag varints, as Go's
		if w <= 0 || n < 0 || n > int64(len(v)-w) {
			return "", false
		}
		fields[i], v = v[w:w+int(n)], v[w+int(n):]
	}
	switch {
	case len(fields[1]) > 0:
		return string(fields[1]), true
	case len(fields[0]) > 0:
		return string(fields[0]), true
	}
	return "", false
}

// rawKeyPrefix is the schema id whose payments avroKey may read, or -1:
// the serde's RawPayment id, when raw_payment.avsc starts with the string
// fields payment_id and idempotency_key.
func rawKeyPrefix(serde *schemas.Serde) int {
	id, ok := serde.ID(&schemas.RawPayment{})
	if !ok {
		return -1
	}
	defs, err := schemas.Defs()
	if err != nil {
		return -1
	}
	for _, d := range defs {
		rs, isRec := d.Schema.(*avro.RecordSchema)
		if d.File != "raw_payment.avsc" || !isRec || len(rs.Fields()) < 2 {
			continue
		}
		f := rs.Fields()
		if f[0].Name() == "payment_id" && f[0].Type().Type() == avro.String &&
			f[1].Name() == "idempotency_key" && f[1].Type().Type() == avro.String {
			return id
		}
	}
	return -1
}

// tokenize is step 2.
func (p *Processor) tokenize(ctx context.Context, rec *kgo.Record, dst []*kgo.Record) ([]*kgo.Record, error) {
	if err := p.t.stateTable().WaitRestored(ctx, rec.Partition); err != nil {
		return dst, err
	}
	orig, err := original(rec, &p.srcTopic)
	if err != nil {
		return dst, err
	}
	return p.t.transform(ctx, orig, rec.Partition, dst)
}

// original rebuilds the raw input record from a repartitioned one. topic is
// the source topic's name seen last, reused when it repeats (it does: one
// input topic), instead of a string per record.
func original(rec *kgo.Record, topic *string) (*kgo.Record, error) {
	o := &kgo.Record{Value: rec.Value, Timestamp: rec.Timestamp}
	seen := 0
	for _, h := range rec.Headers {
		var err error
		switch h.Key {
		case hdrTopic:
			if string(h.Value) != *topic {
				*topic = string(h.Value)
			}
			o.Topic = *topic
		case hdrPartition:
			var n int64
			n, err = parseDecimal(h.Value, 1<<31-1)
			o.Partition = int32(n)
		case hdrOffset:
			o.Offset, err = parseDecimal(h.Value, 1<<63-1)
		case hdrKey:
			o.Key = h.Value
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("repartitioned record %s[%d]@%d: header %s: %w", rec.Topic, rec.Partition, rec.Offset, h.Key, err)
		}
		seen++
	}
	if seen != 4 {
		return nil, errors.New("repartitioned record " + rec.Topic + "[" + strconv.Itoa(int(rec.Partition)) + "]@" +
			strconv.FormatInt(rec.Offset, 10) + " lacks its source headers: only the tokenizer may write the repartition topic")
	}
	return o, nil
}

// parseDecimal parses a non-negative decimal number up to limit without
// converting b to a string (a header per record).
func parseDecimal(b []byte, limit int64) (int64, error) {
	if len(b) == 0 || len(b) > 19 {
		return 0, fmt.Errorf("not a decimal number: %d bytes", len(b))
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errors.New("not a decimal number")
		}
		d := int64(c - '0')
		if n > (limit-d)/10 {
			return 0, fmt.Errorf("number above %d", limit)
		}
		n = n*10 + d
	}
	return n, nil
}

// PartitionsAssigned implements eos.AssignListener: the state partitions of
// newly assigned repartition partitions start restoring now, in the
// background, paused on cl until restored; other partitions keep flowing.
func (p *Processor) PartitionsAssigned(cl *kgo.Client, assigned map[string][]int32) {
	topic := p.repart
	parts := assigned[topic]
	if len(parts) == 0 {
		return
	}
	p.t.stateTable().Assign(parts,
		func(ps []int32) { cl.PauseFetchPartitions(map[string][]int32{topic: ps}) },
		func(part int32) { cl.ResumeFetchPartitions(map[string][]int32{topic: {part}}) })
}

// PartitionsRevoked implements eos.AssignListener.
func (p *Processor) PartitionsRevoked(revoked map[string][]int32) {
	if parts := revoked[p.repart]; len(parts) > 0 {
		p.t.stateTable().Revoke(parts)
	}
}

// Ended implements eos.Ender.
func (p *Processor) Ended(committed bool) {
	if err := p.t.stateTable().Ended(committed); err != nil {
		// The changelog has the committed writes; the table restores the
		// partition's tail before it is used again.
		p.t.cfg.logger.Warn("applying committed state to the local store failed; restoring from the changelog", "err", err)
	}
}

// Ready is nil once every owned state partition is restored.
func (p *Processor) Ready() error { return p.t.StateReady() }

// Partitioner is the producer partitioner the tokenizer's loop must use:
// records to the idempotency-state topic go to the partition set on them
// (the repartition record's partition: the topics are co-partitioned),
// everything else is partitioned by key like any Java Kafka client
// (murmur2), the repartition topic included. Pass it as
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
