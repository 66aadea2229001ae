package scan

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/internal/pan"
)

// scanKafka reads every partition of the topic read_committed, from the start
// (or From) up to the last stable offset captured when the scan starts (or
// To), and scans record values, keys and header values.
func (r *run) scanKafka(ctx context.Context, t Target) error {
	kc := r.s.cfg.kafka
	if len(t.Brokers) > 0 {
		kc.Brokers = t.Brokers
	}
	if len(kc.Brokers) == 0 {
		return fmt.Errorf("no Kafka brokers: give kafka://HOST:PORT/%s or set --kafka-brokers", t.Topic)
	}
	opts, err := kafkax.Opts(kc)
	if err != nil {
		return fmt.Errorf("kafka client options: %w", err)
	}
	brokers := strings.Join(kc.Brokers, ",")
	bounds, err := r.kafkaBounds(ctx, opts, t, brokers)
	if err != nil {
		return err
	}
	det := r.s.det
	var ms []pan.Match
	var unit unitMatches
	scanPart := func(rec *kgo.Record, part string, b []byte) {
		ms = det.Find(ms[:0], b)
		unit.reset()
		for _, m := range ms {
			r.emitKafka(t, rec, part, m, unit.occurrence(m))
		}
	}
	err = kafkax.ReadRanges(ctx, opts, t.Topic, bounds, func(rec *kgo.Record) error {
		r.items.Add(1)
		n := len(rec.Value) + len(rec.Key)
		scanPart(rec, "value", rec.Value)
		if len(rec.Key) > 0 {
			scanPart(rec, "key", rec.Key)
		}
		for _, h := range rec.Headers {
			n += len(h.Value)
			scanPart(rec, "header:"+r.s.mask(h.Key), h.Value)
		}
		r.bytes.Add(int64(n))
		return nil
	}, kafkax.IdleTimeout(r.s.cfg.kafkaIdle))
	var stalled *kafkax.StalledError
	if errors.As(err, &stalled) {
		r.warn("kafka %s: partitions %v returned nothing for %s before reaching the end offset captured at start (aborted transactional records at the tail?); scanned what was readable", t.Topic, stalled.Partitions, stalled.Idle)
		return nil
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("fetching from %s: %w", brokers, err)
	}
	return err
}

// emitKafka reports one PAN match in a part of a Kafka record.
func (r *run) emitKafka(t Target, rec *kgo.Record, part string, m pan.Match, occ int) {
	loc := fmt.Sprintf("%s/%d/%d %s", t.Topic, rec.Partition, rec.Offset, part)
	r.emit(Finding{
		Kind:     KindPAN,
		Source:   SourceKafka,
		Target:   t.String(),
		Location: loc,
		Kafka:    &KafkaLocation{Topic: t.Topic, Partition: rec.Partition, Offset: rec.Offset, Part: part},
		Network:  m.Network.String(),
		Last4:    string(m.Last4[:]),
		Encoding: m.Encoding.String(),
		Digits:   m.Digits,
		Message:  panMessage(m, loc),
	}, "kafka:"+loc, occ)
}

// kafkaBounds lists, per partition, the [start, end) offsets to read.
func (r *run) kafkaBounds(ctx context.Context, opts []kgo.Opt, t Target, brokers string) (map[int32]kafkax.Range, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	lctx, cancel := context.WithTimeout(ctx, r.s.cfg.dialTimeout)
	defer cancel()

	list := func(what string, fn func() (kadm.ListedOffsets, error)) (kadm.ListedOffsets, error) {
		l, err := fn()
		if err == nil {
			err = l.Error()
		}
		if err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				return nil, fmt.Errorf("topic %q does not exist on %s (check the topic name)", t.Topic, brokers)
			}
			if lctx.Err() != nil || strings.Contains(err.Error(), "dial") {
				return nil, fmt.Errorf("cannot reach Kafka at %s (check the broker address, TLS and SASL settings): %w", brokers, err)
			}
			return nil, fmt.Errorf("listing %s offsets of %s on %s: %w", what, t.Topic, brokers, err)
		}
		if _, ok := l[t.Topic]; !ok {
			return nil, fmt.Errorf("topic %q does not exist on %s (check the topic name)", t.Topic, brokers)
		}
		return l, nil
	}
	startL, err := list("start", func() (kadm.ListedOffsets, error) { return adm.ListStartOffsets(lctx, t.Topic) })
	if err != nil {
		return nil, err
	}
	// The last stable offset: what a read_committed consumer can read now.
	endL, err := list("end", func() (kadm.ListedOffsets, error) { return adm.ListCommittedOffsets(lctx, t.Topic) })
	if err != nil {
		return nil, err
	}
	atTime := func(b Bound) (kadm.ListedOffsets, error) {
		if !b.Set || b.Time.IsZero() {
			return nil, nil
		}
		return list("time", func() (kadm.ListedOffsets, error) {
			return adm.ListOffsetsAfterMilli(lctx, b.Time.UnixMilli(), t.Topic)
		})
	}
	fromL, err := atTime(t.From)
	if err != nil {
		return nil, err
	}
	toL, err := atTime(t.To)
	if err != nil {
		return nil, err
	}
	out := map[int32]kafkax.Range{}
	for p, so := range startL[t.Topic] {
		start, end := so.Offset, int64(0)
		if eo, ok := endL.Lookup(t.Topic, p); ok {
			end = eo.Offset
		}
		switch {
		case fromL != nil:
			if o, ok := fromL.Lookup(t.Topic, p); ok {
				start = max(start, o.Offset)
			}
		case t.From.Set:
			start = max(start, t.From.Offset)
		}
		switch {
		case toL != nil:
			if o, ok := toL.Lookup(t.Topic, p); ok && o.Offset >= 0 {
				end = min(end, o.Offset)
			}
		case t.To.Set:
			end = min(end, t.To.Offset)
		}
		out[p] = kafkax.Range{Start: start, End: end}
	}
	return out, nil
}
