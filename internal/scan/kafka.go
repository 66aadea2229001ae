package scan

import (
	"context"
	"errors"
	"fmt"
	"sort"
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
	remaining := map[int32]int64{}
	starts := map[int32]kgo.Offset{}
	for p, b := range bounds {
		if b[0] < b[1] {
			remaining[p] = b[1]
			starts[p] = kgo.NewOffset().At(b[0])
		}
	}
	if len(remaining) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{t.Topic: starts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Commit/abort markers are kept so a partition whose last offset
		// before the end is a marker is seen to be finished.
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()

	det := r.s.det
	var ms []pan.Match
	var unit unitMatches
	scanPart := func(rec *kgo.Record, part string, b []byte) {
		ms = det.Find(ms[:0], b)
		unit.reset()
		for _, m := range ms {
			occ := unit.occurrence(m)
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
	}
	for len(remaining) > 0 {
		pctx, cancel := context.WithTimeout(ctx, r.s.cfg.kafkaIdle)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		progressed := false
		var ferr error
		fs.EachError(func(_ string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			ferr = fmt.Errorf("fetching %s partition %d from %s: %w", t.Topic, p, brokers, err)
		})
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(rec *kgo.Record) {
			end, ok := remaining[rec.Partition]
			if !ok {
				return
			}
			progressed = true
			if rec.Offset >= end {
				delete(remaining, rec.Partition)
				return
			}
			if !rec.Attrs.IsControl() {
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
			}
			if rec.Offset >= end-1 {
				delete(remaining, rec.Partition)
			}
		})
		if !progressed && fs.Err0() != nil && errors.Is(fs.Err0(), context.DeadlineExceeded) {
			ps := make([]int32, 0, len(remaining))
			for p := range remaining {
				ps = append(ps, p)
			}
			sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
			r.warn("kafka %s: partitions %v returned nothing for %s before reaching the end offset captured at start (aborted transactional records at the tail?); scanned what was readable", t.Topic, ps, r.s.cfg.kafkaIdle)
			return nil
		}
	}
	return nil
}

// kafkaBounds lists, per partition, the [start, end) offsets to read.
func (r *run) kafkaBounds(ctx context.Context, opts []kgo.Opt, t Target, brokers string) (map[int32][2]int64, error) {
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
	out := map[int32][2]int64{}
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
		out[p] = [2]int64{start, end}
	}
	return out, nil
}
