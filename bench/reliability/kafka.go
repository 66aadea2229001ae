package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
)

// names are the topics and groups under test: pcistream's defaults on the
// dev stack, prefixed per run on an external cluster.
type names struct {
	prefix                         string
	tp                             config.Topics // every topic, prefixed
	in, out, dlq, audit, ckpt, grp string        // the masker's
}

func newNames(prefix string) names {
	d := config.DefaultTopics()
	tp := config.Topics{PaymentsRaw: prefix + d.PaymentsRaw, PaymentsTokenized: prefix + d.PaymentsTokenized,
		PaymentsDLQ: prefix + d.PaymentsDLQ, LogsRaw: prefix + d.LogsRaw, LogsSanitized: prefix + d.LogsSanitized,
		LogsDLQ: prefix + d.LogsDLQ, AuditEvents: prefix + d.AuditEvents, Vault: prefix + d.Vault,
		Idempotency: prefix + d.Idempotency, AuditCheckpoints: prefix + d.AuditCheckpoints,
		GatewayIdempotency: prefix + d.GatewayIdempotency}
	return names{prefix: prefix, tp: tp, in: tp.LogsRaw, out: tp.LogsSanitized, dlq: tp.LogsDLQ,
		audit: tp.AuditEvents, ckpt: tp.AuditCheckpoints, grp: prefix + "pcistream-masker"}
}

// testPAN is a well-known test card number; every input carries it and no
// output may.
const testPAN = "4111111111111111"

// producer offers events at a fixed rate until stopped; it retries through
// broker restarts (kgo's default: no delivery timeout), so every event it
// counts as produced is in the input topic.
type producer struct {
	cl       *kgo.Client
	rate     int
	next     atomic.Int64 // ids handed out
	acked    atomic.Int64
	failed   atomic.Int64
	firstErr atomic.Value
	stop     chan struct{}
	done     chan struct{}
	encode   func(id int64) (key, value []byte)
}

// logLine is the masker's input: a log line carrying the test PAN, keyed by
// its event id.
func logLine(id int64) ([]byte, []byte) {
	return fmt.Appendf(nil, "evt-%09d", id), fmt.Appendf(nil, "evt-%09d payment accepted card=%s amount=12.00", id, testPAN)
}

func startProducer(brokers, topic string, rate, total int) (*producer, error) {
	return startProducerWith(brokers, topic, rate, total, logLine)
}

// startProducerWith offers the records encode makes for ids 0..total-1.
func startProducerWith(brokers, topic string, rate, total int, encode func(int64) ([]byte, []byte)) (*producer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		return nil, err
	}
	p := &producer{cl: cl, rate: rate, stop: make(chan struct{}), done: make(chan struct{}), encode: encode}
	go p.run(total)
	return p, nil
}

func (p *producer) run(total int) {
	defer close(p.done)
	tick := 10 * time.Millisecond
	perTick := float64(p.rate) * tick.Seconds()
	t := time.NewTicker(tick)
	defer t.Stop()
	owed := 0.0
	for int(p.next.Load()) < total {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		owed += perTick
		for ; owed >= 1 && int(p.next.Load()) < total; owed-- {
			id := p.next.Add(1) - 1
			k, v := p.encode(id)
			p.cl.Produce(context.Background(), &kgo.Record{Key: k, Value: v},
				func(_ *kgo.Record, err error) {
					if err != nil {
						p.failed.Add(1)
						p.firstErr.CompareAndSwap(nil, err)
						return
					}
					p.acked.Add(1)
				})
		}
	}
}

// finish stops offering and waits until everything offered is acknowledged.
func (p *producer) finish(ctx context.Context) error {
	<-p.done // every event offered
	err := p.cl.Flush(ctx)
	p.cl.Close()
	if err != nil {
		return fmt.Errorf("producer flush: %w", err)
	}
	if n := p.failed.Load(); n > 0 {
		return fmt.Errorf("producer: %d events not acknowledged, first: %v", n, p.firstErr.Load())
	}
	return nil
}

// waitProduced waits until the producer has handed out n events.
func (p *producer) waitProduced(ctx context.Context, n int64) {
	for p.next.Load() < n && ctx.Err() == nil {
		select {
		case <-p.done:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// lag is the group's uncommitted input: end offsets minus committed offsets
// of the input topic (-1 if the cluster does not answer).
func lag(ctx context.Context, brokers string, n names) int64 {
	return lagOf(ctx, brokers, n.grp, n.in)
}

// lagOf is group's uncommitted input over topics.
func lagOf(ctx context.Context, brokers, grp string, topics ...string) int64 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		return -1
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil || ends.Error() != nil {
		return -1
	}
	com, err := adm.FetchOffsets(ctx, grp)
	if err != nil {
		return -1
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := com.Lookup(o.Topic, o.Partition)
		off := int64(0)
		if ok && c.Err == nil {
			off = c.At
		}
		total += o.Offset - off
	})
	return total
}

// waitDrained waits until the group has committed every input offset.
func waitDrained(ctx context.Context, brokers string, n names, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for time.Since(start) < limit {
		if l := lag(ctx, brokers, n); l == 0 {
			return time.Since(start), nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, fmt.Errorf("input not drained within %s (lag %d)", limit, lag(ctx, brokers, n))
}

// tally is what the output topics hold against the input.
type tally struct {
	outputs, distinct, lost, dup, leaked int
	audits, auditDup                     int
	inputDup                             int // events the producer wrote twice (a retry across a broker crash)
}

// check reads the input, output and audit topics read_committed to their
// end and counts, against the n produced events, lost, duplicated and
// leaked (an unmasked PAN) outputs and duplicated audit events (by event
// id, the record key). Exactly once means one output per input record: an
// event the producer itself wrote twice (an idempotent producer's retry
// that a crashed broker no longer recognises) must come out twice, and is
// counted apart as an input duplicate.
func check(ctx context.Context, brokers string, nm names, n int) (tally, error) {
	var t tally
	in := map[string]int{}
	if err := readAll(ctx, brokers, nm.in, func(r *kgo.Record) { in[string(r.Key)]++ }); err != nil {
		return t, err
	}
	seen := map[string]int{}
	err := readAll(ctx, brokers, nm.out, func(r *kgo.Record) {
		t.outputs++
		v := string(r.Value)
		if strings.Contains(v, testPAN) || strings.Contains(string(r.Key), testPAN) {
			t.leaked++
		}
		id, _, _ := strings.Cut(v, " ")
		seen[id]++
	})
	if err != nil {
		return t, err
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("evt-%09d", i)
		want, c := max(in[id], 1), seen[id]
		t.inputDup += want - 1
		switch {
		case c < want:
			t.lost += want - c
		case c > want:
			t.dup += c - want
		}
		if c > 0 {
			t.distinct++
		}
	}
	ids := map[string]int{}
	err = readAll(ctx, brokers, nm.audit, func(r *kgo.Record) {
		t.audits++
		ids[string(r.Key)]++
		if strings.Contains(string(r.Value), testPAN) {
			t.leaked++
		}
	})
	for _, c := range ids {
		t.auditDup += c - 1
	}
	return t, err
}

// readAll reads topic read_committed from the start to its end offsets.
func readAll(ctx context.Context, brokers, topic string, fn func(*kgo.Record)) error {
	seeds := strings.Split(brokers, ",")
	acl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	ends, err := kadm.NewClient(acl).ListCommittedOffsets(ctx, topic)
	acl.Close()
	if err != nil {
		return err
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.KeepControlRecords())
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("reading %s: %d partitions not read to their end: %w", topic, len(want), ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			mu.Lock()
			defer mu.Unlock()
			if !r.Attrs.IsControl() {
				fn(r)
			}
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return nil
}
