package tokenizer

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/internal/replay"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/schemas"
)

// replayJob runs one tokenizer replay job (internal/replay with a
// ReplayProcessor) writing to tp, with its state on tp.Idempotency; cut,
// when > 0, cancels the run after that many committed transactions.
func (e *env) replayJob(kr *token.Keyring, tp config.Topics, r replay.Range, group string, lookback time.Duration, cut int) (replay.Result, error) {
	return e.replayJobP(kr, tp, r, group, lookback, cut, false)
}

// replayJobP is replayJob, with the job's audit events relabelled
// (replay.RelabelAudit, as the command does) when relabel is set.
func (e *env) replayJobP(kr *token.Keyring, tp config.Topics, r replay.Range, group string, lookback time.Duration, cut int, relabel bool) (replay.Result, error) {
	e.t.Helper()
	tk := e.tokenizer(kr, Topics(tp), StateClientOpts(e.opts...))
	defer tk.Close()
	rp := NewReplayProcessor(tk, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var p eos.Processor = rp
	if relabel {
		p = replay.RelabelAudit(rp, e.serde, tp.AuditEvents, group)
	}
	return replay.Run(ctx, p, r, replay.Options{
		ClientOpts: append(append([]kgo.Opt(nil), e.opts...), kgo.RecordPartitioner(Partitioner(tp.Idempotency))),
		Group:      group, BatchSize: 4, Lookback: lookback, SeedTopics: []string{tp.Idempotency},
		Restore: rp.Restore,
		Progress: func(res replay.Result) {
			if cut > 0 && res.Batches >= cut {
				cancel()
			}
		},
	})
}

// replayTopics are fresh output topics for a replay of e's input: the live
// repartition topic (for its partition count), the job's own state topic.
func (e *env) replayTopics(suffix string) config.Topics {
	tp := e.topics
	for _, p := range []*string{&tp.PaymentsTokenized, &tp.PaymentsDLQ, &tp.AuditEvents, &tp.Vault} {
		*p += suffix
	}
	tp.TokenizerRepartition = e.topics.RepartitionTopic()
	newEnvTopics(e.t, tp)
	// The job's state topic as the command creates it (not the live
	// topology's, whose time retention a real broker applies to the
	// replayed records' past timestamps).
	tp.Idempotency = e.topics.Idempotency + suffix + ".job"
	if _, err := EnsureReplayState(context.Background(), e.opts, tp.TokenizerRepartition, tp.Idempotency); err != nil {
		e.t.Fatal(err)
	}
	return tp
}

// TestReplayJobByteIdentical replays the tokenizer over its whole input as
// a job that is interrupted after two transactions and run again, and over
// the second half of the input with a look-back: both write exactly the
// live run's tokenized events, dead letters and audit events (the same
// bytes, each once; retries whose first attempt precedes the range stay
// duplicates), and the live group's offsets do not move.
func TestReplayJobByteIdentical(t *testing.T) {
	e := newEnv(t)
	kr, _ := token.NewKeyring()
	recs := replayInput(e)
	e.produce(recs...)
	live := "g-" + t.Name()
	stop := e.run(e.tokenizer(kr), live)
	e.waitCount(e.topics.AuditEvents, len(recs), 30*time.Second)
	stop()
	adm := kadm.NewClient(devstacktest.Client(t, stack))
	before, err := adm.FetchOffsets(context.Background(), live)
	if err != nil {
		t.Fatal(err)
	}

	// The whole input, interrupted and resumed.
	tp := e.replayTopics(".replay")
	all := replay.Range{Topic: e.topics.PaymentsRaw, FromOffset: -1, ToOffset: -1}
	job := devstacktest.Name(t, "job")
	if _, err := e.replayJobP(kr, tp, all, job, 0, 2, true); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	res, err := e.replayJobP(kr, tp, all, job, 0, 0, true)
	if err != nil || len(res.Resumed) == 0 {
		t.Fatalf("resumed run: %v, resumed %v", err, res.Resumed)
	}
	e.sameOutputs(tp, time.Time{})

	// The second half, with the look-back: idem-0..4 retried at 25..29 s
	// were duplicates live and must be again.
	from := recs[0].Timestamp.Add(15 * time.Second) // record i is at the first one's time + i s
	tp2 := e.replayTopics(".half")
	half := replay.Range{Topic: e.topics.PaymentsRaw, FromOffset: -1, ToOffset: -1, FromTime: from}
	if res, err = e.replayJob(kr, tp2, half, devstacktest.Name(t, "half"), time.Hour, 0); err != nil || res.Seeded == 0 {
		t.Fatalf("half: %v, seeded %d", err, res.Seeded)
	}
	e.sameOutputs(tp2, from)

	after, err := adm.FetchOffsets(context.Background(), live)
	if err != nil {
		t.Fatal(err)
	}
	before.Each(func(o kadm.OffsetResponse) {
		if a, _ := after.Lookup(o.Topic, o.Partition); a.At != o.At {
			t.Errorf("live group moved on %s/%d: %d -> %d", o.Topic, o.Partition, o.At, a.At)
		}
	})
}

// sameOutputs checks that tp's tokenized, DLQ and audit topics hold exactly
// the live outputs with a timestamp at or after from, byte for byte.
func (e *env) sameOutputs(tp config.Topics, from time.Time) {
	e.t.Helper()
	for _, pair := range [][2]string{{e.topics.PaymentsTokenized, tp.PaymentsTokenized}, {e.topics.PaymentsDLQ, tp.PaymentsDLQ}, {e.topics.AuditEvents, tp.AuditEvents}} {
		var liveRecs []*kgo.Record
		for _, r := range e.read(pair[0], false) {
			if !r.Timestamp.Before(from) {
				liveRecs = append(liveRecs, r)
			}
		}
		got := e.read(pair[1], false)
		if pair[1] == tp.AuditEvents {
			got = e.unlabel(got)
		}
		a, b := bySource(liveRecs), bySource(got)
		if len(a) == 0 || len(a) != len(b) || len(got) != len(liveRecs) {
			e.t.Fatalf("%s: live %d records, replay %d", pair[0], len(liveRecs), len(got))
		}
		for k, r := range a {
			r2, ok := b[k]
			if !ok || !bytes.Equal(r.Key, r2.Key) || !bytes.Equal(r.Value, r2.Value) || !r.Timestamp.Equal(r2.Timestamp) {
				e.t.Fatalf("%s: record %d of a key differs on replay", pair[0], len(k))
			}
		}
	}
}

// unlabel undoes replay.RelabelAudit on audit records (original id, key and
// attrs), so they can be compared with the live ones byte for byte; records
// that were not relabelled are returned as they are.
func (e *env) unlabel(recs []*kgo.Record) []*kgo.Record {
	e.t.Helper()
	out := make([]*kgo.Record, 0, len(recs))
	for _, r := range recs {
		var ev schemas.AuditEvent
		if err := e.serde.Decode(context.Background(), r.Value, &ev); err != nil {
			e.t.Fatal(err)
		}
		orig, ok := ev.Attrs["replay_of"]
		if !ok {
			out = append(out, r)
			continue
		}
		if ev.ID == orig || ev.Attrs["replay_job"] == "" {
			e.t.Fatalf("relabelled audit event keeps the original id or lacks its job")
		}
		ev.ID = orig
		delete(ev.Attrs, "replay_of")
		delete(ev.Attrs, "replay_job")
		c := *r
		c.Key, c.Value = []byte(orig), e.encode2(&ev)
		out = append(out, &c)
	}
	return out
}

func (e *env) encode2(v any) []byte {
	e.t.Helper()
	b, err := e.serde.Encode(v)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}
