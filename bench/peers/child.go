package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"syscall"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/processors/masker"
	"github.com/pcistream/pcistream/schemas"
)

// childMain runs one Go contender in this process until SIGTERM, so its CPU
// and RSS are measured apart from the driver's, like the JVM's.
func childMain(kind, broker, registry, in, out, sfx, group string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var err error
	switch kind {
	case "masker":
		err = runMasker(ctx, broker, registry, in, out, sfx, group)
	case "plain":
		err = runPlain(ctx, broker, in, out, group)
	default:
		err = fmt.Errorf("unknown child %q", kind)
	}
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// maskerTopics are the masker's topics for one run: its input and output,
// and DLQ and audit topics named by sfx.
func maskerTopics(in, out, sfx string) config.Topics {
	tp := topicsFor(sfx)
	tp.LogsRaw, tp.LogsSanitized = in, out
	return tp
}

func runMasker(ctx context.Context, broker, registry, in, out, sfx, group string) error {
	srcl, err := sr.NewClient(sr.URLs(registry))
	if err != nil {
		return err
	}
	tp := maskerTopics(in, out, sfx)
	serde, err := schemas.NewSerde(ctx, srcl, tp)
	if err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	m, err := masker.New(serde, masker.Topics(tp), masker.Logger(quiet))
	if err != nil {
		return err
	}
	l, err := masker.NewLoop(m, []kgo.Opt{kgo.SeedBrokers(broker)}, eos.Group(group), eos.TransactionalID(group), eos.Logger(quiet))
	if err != nil {
		return err
	}
	return l.Run(ctx)
}

// publishedPAN is the published masking pattern (bench/detector's Go
// regexp baseline, and the Kafka Streams peer's java.util.regex pattern).
var publishedPAN = regexp.MustCompile(`\b(?:\d[ -]*?){13,16}\b`)

// maskRegexp is the published job: each Luhn-valid match keeps its first
// six and last four digits, the others become '*', separators stay.
func maskRegexp(v []byte) []byte {
	ms := publishedPAN.FindAllIndex(v, -1)
	var out []byte
	for _, m := range ms {
		if !luhn(v[m[0]:m[1]]) {
			continue
		}
		if out == nil {
			out = append([]byte(nil), v...)
		}
		digits := 0
		for _, c := range v[m[0]:m[1]] {
			if c >= '0' && c <= '9' {
				digits++
			}
		}
		seen := 0
		for i := m[0]; i < m[1]; i++ {
			if c := v[i]; c >= '0' && c <= '9' {
				if seen >= 6 && seen < digits-4 {
					out[i] = '*'
				}
				seen++
			}
		}
	}
	if out == nil {
		return v
	}
	return out
}

func luhn(b []byte) bool {
	sum, dbl := 0, false
	for i := len(b) - 1; i >= 0; i-- {
		c := b[i]
		if c < '0' || c > '9' {
			continue
		}
		d := int(c - '0')
		if dbl {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		dbl = !dbl
	}
	return sum%10 == 0
}

// runPlain is the hand-written franz-go loop users write first: poll,
// mask with the published regexp, produce, flush, commit offsets. No
// transactions: at least once (a crash between flush and commit
// duplicates), and a read_committed reader sees outputs as soon as
// they are acknowledged.
func runPlain(ctx context.Context, broker, in, out, group string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumerGroup(group), kgo.ConsumeTopics(in),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return err
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollRecords(ctx, 1000)
		fs.EachRecord(func(r *kgo.Record) {
			cl.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: maskRegexp(r.Value), Headers: r.Headers, Timestamp: r.Timestamp}, nil)
		})
		if err := cl.Flush(ctx); err != nil {
			return err
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}
