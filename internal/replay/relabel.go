package replay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/schemas"
)

// RelabelAudit wraps p so that the audit events it emits to auditTopic
// during a replay job are the job's own facts: each gets the id
// hex(sha256(job|original id))[:32] (also its record key) and the attrs
// replay_job and replay_of (the original id). Everything else p writes
// (tokenized events, sanitized logs, dead letters) is left byte for byte.
//
// Why: the live run's audit events are archived already. A replay writing
// them again under the same ids would archive one id twice, which verify
// rightly reports as a defect; under the job's ids the trail says "replayed
// by job J" and a re-run of J (exactly once anyway) yields the same ids.
func RelabelAudit(p eos.Processor, serde *schemas.Serde, auditTopic, job string) eos.Processor {
	return &relabel{p: p, serde: serde, topic: auditTopic, job: job}
}

type relabel struct {
	p     eos.Processor
	serde *schemas.Serde
	topic string
	job   string
}

var (
	_ eos.Processor  = (*relabel)(nil)
	_ eos.BatchEnder = (*relabel)(nil)
	_ eos.Ender      = (*relabel)(nil)
)

func (r *relabel) Process(ctx context.Context, rec *kgo.Record, out *eos.Out) error {
	n := out.Len()
	if err := r.p.Process(ctx, rec, out); err != nil {
		return err
	}
	return r.rewrite(ctx, out.Records()[n:])
}

func (r *relabel) EndBatch(ctx context.Context, out *eos.Out) error {
	be, ok := r.p.(eos.BatchEnder)
	if !ok {
		return nil
	}
	n := out.Len()
	if err := be.EndBatch(ctx, out); err != nil {
		return err
	}
	return r.rewrite(ctx, out.Records()[n:])
}

func (r *relabel) Ended(committed bool) {
	if e, ok := r.p.(eos.Ender); ok {
		e.Ended(committed)
	}
}

func (r *relabel) rewrite(ctx context.Context, recs []*kgo.Record) error {
	for _, rec := range recs {
		if rec.Topic != r.topic {
			continue
		}
		var ev schemas.AuditEvent
		if err := r.serde.Decode(ctx, rec.Value, &ev); err != nil {
			return fmt.Errorf("relabel a replayed audit event: %w", err)
		}
		orig := ev.ID
		h := sha256.Sum256([]byte(r.job + "|" + orig))
		ev.ID = hex.EncodeToString(h[:])[:32]
		if ev.Attrs == nil {
			ev.Attrs = map[string]string{}
		}
		ev.Attrs["replay_job"] = r.job
		ev.Attrs["replay_of"] = orig
		b, err := r.serde.Encode(&ev)
		if err != nil {
			return fmt.Errorf("relabel a replayed audit event: %w", err)
		}
		rec.Key, rec.Value = []byte(ev.ID), b
	}
	return nil
}

// Bounds resolves r to per-partition [from, to) offsets as Run does (the
// end as of now when r has none), for jobs that read a range themselves
// (the auditor's re-archive).
func Bounds(ctx context.Context, clientOpts []kgo.Opt, r Range) (map[int32][2]int64, error) {
	cl, err := kgo.NewClient(clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	return resolve(ctx, kadm.NewClient(cl), r)
}
