// Package opaudit writes one operator action (replay, redrive, detokenize,
// key rotation, topology apply, schema registration) to the audit topic,
// durably, before the caller goes on. The actor is the Kafka principal the
// command authenticates as (kafkax.Principal), never a name typed in.
package opaudit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/schemas"
)

// ErrBootstrap is returned when the audit topic or the audit event schema
// does not exist yet: on a fresh cluster, `topology apply` and `schemas
// register` run before there is anywhere to record them.
var ErrBootstrap = errors.New("the audit topic or its schema does not exist yet")

// timeout bounds one write: an operator command must not hang on Kafka.
const timeout = 30 * time.Second

// Encoder encodes an audit event in the wire format (schemas.Serde).
type Encoder interface {
	Encode(v any) ([]byte, error)
}

// Write produces ev to topic synchronously (acks=all, idempotent producer)
// and returns once Kafka has it. An empty ev.ID is derived from the event,
// an empty ev.Time is now.
func Write(ctx context.Context, kopts []kgo.Opt, enc Encoder, topic string, ev *schemas.AuditEvent) error {
	if ev.Time == 0 {
		ev.Time = time.Now().UnixMilli()
	}
	if ev.ID == "" {
		h := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%s|%d|%s|%s", ev.Actor, ev.Action, ev.Subject, ev.Time, ev.Outcome, ev.Reason)))
		ev.ID = hex.EncodeToString(h[:16])
	}
	b, err := enc.Encode(ev)
	if err != nil {
		return fmt.Errorf("encode audit event: %w", err)
	}
	// Unknown topics fail fast instead of being retried for a minute.
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), kopts...), kgo.UnknownTopicRetries(2))...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(ev.ID), Value: b, Timestamp: time.UnixMilli(ev.Time)}).FirstErr()
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("audit topic %s: %w (%w)", topic, ErrBootstrap, err)
	}
	if err != nil {
		return fmt.Errorf("write to audit topic %s: %w", topic, err)
	}
	return nil
}

// Operator writes one operator action as cfg's Kafka principal: it opens
// the registry and Kafka clients cfg describes, fills in the actor and the
// reason, and writes ev. A missing audit schema is ErrBootstrap too.
func Operator(ctx context.Context, cfg *config.Config, reason string, ev *schemas.AuditEvent) error {
	actor, err := kafkax.Principal(cfg.Kafka)
	if err != nil {
		return err
	}
	ev.Actor, ev.Reason = actor, reason
	kopts, err := kafkax.Opts(cfg.Kafka)
	if err != nil {
		return err
	}
	serde, err := schemas.Open(ctx, cfg.Registry, cfg.Topics)
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && (re.ErrorCode == 40401 || re.ErrorCode == 40403) {
			return fmt.Errorf("audit schema: %w (%w)", ErrBootstrap, err)
		}
		return err
	}
	return Write(ctx, kopts, serde, cfg.Topics.AuditEvents, ev)
}
