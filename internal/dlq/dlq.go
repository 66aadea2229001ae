// Package dlq reads pcistream's dead-letter topics for operators: it lists
// dead letters (already masked by the processor that wrote them, and masked
// again here) with their reasons and source coordinates, and selects the
// source records a redrive re-processes.
//
// A dead letter never holds the input itself, only a masked copy; a redrive
// therefore reads the source record from the raw topic, where it stays until
// its retention ends.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/schemas"
)

// Filter selects dead letters. Zero values select everything.
type Filter struct {
	// Reasons are reason codes (invalid_pan, oversize, ...).
	Reasons []string
	// From and To bound the source record's time: [From, To).
	From, To time.Time
	// SourcePartition, when >= 0, selects one source partition, and
	// FromOffset/ToOffset ([from, to), -1 for open) its offsets.
	SourcePartition      int32
	FromOffset, ToOffset int64
}

// All returns a filter that selects every dead letter.
func All() Filter { return Filter{SourcePartition: -1, FromOffset: -1, ToOffset: -1} }

// Match reports whether d is selected.
func (f Filter) Match(d *schemas.DLQRecord) bool {
	if len(f.Reasons) > 0 && !slices.Contains(f.Reasons, d.ReasonCode) {
		return false
	}
	t := time.UnixMilli(d.SourceTimestampMs)
	if !f.From.IsZero() && t.Before(f.From) || !f.To.IsZero() && !t.Before(f.To) {
		return false
	}
	if f.SourcePartition >= 0 && d.SourcePartition != f.SourcePartition {
		return false
	}
	return (f.FromOffset < 0 || d.SourceOffset >= f.FromOffset) && (f.ToOffset < 0 || d.SourceOffset < f.ToOffset)
}

// Entry is one dead letter and where it sits in the DLQ topic.
type Entry struct {
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Time      time.Time `json:"time"`
	schemas.DLQRecord
}

// Read calls fn for every dead letter of topic that f selects, from the start
// to the last stable offset when Read is called. Keys and values are masked
// again with the detector (first 6 and last 4 at most), whatever the writer
// did: a dead letter shown to an operator never carries a card number.
func Read(ctx context.Context, opts []kgo.Opt, serde *schemas.Serde, topic string, f Filter, fn func(Entry) error) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	ranges, err := kafkax.StableRanges(ctx, kadm.NewClient(cl), topic, false)
	cl.Close()
	if err != nil {
		return err
	}
	det := pan.New()
	err = kafkax.ReadRanges(ctx, opts, topic, ranges, func(r *kgo.Record) error {
		var d schemas.DLQRecord
		if err := serde.Decode(ctx, r.Value, &d); err != nil {
			return fmt.Errorf("%s/%d@%d is not a dead letter: %w", topic, r.Partition, r.Offset, err)
		}
		if !f.Match(&d) {
			return nil
		}
		d.MaskedKey, _ = det.Mask(nil, d.MaskedKey, pan.Last4)
		d.MaskedValue, _ = det.Mask(nil, d.MaskedValue, pan.Last4)
		d.Reason, _ = det.MaskString(d.Reason, pan.Last4)
		return fn(Entry{Partition: r.Partition, Offset: r.Offset, Time: r.Timestamp, DLQRecord: d})
	}, kafkax.IdleTimeout(10*time.Second))
	var stalled *kafkax.StalledError
	if errors.As(err, &stalled) {
		return nil // an aborted or compacted tail: everything readable was read
	}
	return err
}

// Sources returns the source coordinates of the dead letters f selects: per
// source topic, per partition, the offsets in ascending order, each once.
func Sources(ctx context.Context, opts []kgo.Opt, serde *schemas.Serde, topic string, f Filter) (map[string]map[int32][]int64, error) {
	seen := map[string]map[int32]map[int64]bool{}
	err := Read(ctx, opts, serde, topic, f, func(e Entry) error {
		if seen[e.SourceTopic] == nil {
			seen[e.SourceTopic] = map[int32]map[int64]bool{}
		}
		if seen[e.SourceTopic][e.SourcePartition] == nil {
			seen[e.SourceTopic][e.SourcePartition] = map[int64]bool{}
		}
		seen[e.SourceTopic][e.SourcePartition][e.SourceOffset] = true
		return nil
	})
	out := map[string]map[int32][]int64{}
	for t, ps := range seen {
		out[t] = map[int32][]int64{}
		for p, offs := range ps {
			for o := range offs {
				out[t][p] = append(out[t][p], o)
			}
			slices.Sort(out[t][p])
		}
	}
	return out, err
}
