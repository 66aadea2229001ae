package auditor_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/processors/auditor"
	"github.com/pcistream/pcistream/schemas"
)

// TestAvroAuditEvents archives Confluent wire-format Avro AuditEvents (what
// the tokenizer and masker write) and checks they are decoded and masked.
func TestAvroAuditEvents(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "avro")
	cfg := stack.Config()
	cfg.Topics.AuditEvents = e.topic
	if err := stack.Setup(ctx, &cfg); err != nil {
		t.Fatal(err)
	}
	serde, err := schemas.Open(ctx, cfg.Registry, cfg.Topics)
	if err != nil {
		t.Fatal(err)
	}
	cl := kgoClient(t, kgo.DefaultProduceTopic(e.topic))
	for i := 0; i < 12; i++ {
		ev := schemas.AuditEvent{ID: "id" + string(rune('a'+i)), Time: 1700000000000 + int64(i), Actor: "masker", Action: "mask",
			Outcome: "ok", Topic: "logs.raw", Offset: int64(i), Subject: "logs.raw/0", Reason: "saw " + testPAN,
			Attrs: map[string]string{"sample": "pan=" + testPAN}}
		v, err := serde.Encode(&ev)
		if err != nil {
			t.Fatal(err)
		}
		cl.Produce(ctx, &kgo.Record{Value: v}, nil)
	}
	cl.Produce(ctx, &kgo.Record{Value: []byte{0, 0, 0, 0, 99, 1, 2}}, nil) // unknown schema id
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := auditor.New(e.store, auditor.Topic(e.topic), auditor.Group(e.group),
		auditor.ClientOpts(kgo.SeedBrokers(stack.KafkaAddrs...)), auditor.BatchLimits(100, 1<<20, 100*time.Millisecond),
		auditor.Decoder(auditor.SerdeDecoder(ctx, serde)), auditor.Checkpoints(e.signer, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(rctx) }()
	waitFor(t, "13 records archived", 30*time.Second, func() bool { return countRecords(t, e) == 13 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var decoded, undecodable int
	_, err = chain.Verify(ctx, e.store, chain.TrustedKey(e.signer.Public()), chain.OnBatch(func(_ *chain.Manifest, recs []chain.Record) error {
		for _, r := range recs {
			if r.DecodeError != "" {
				undecodable++
				continue
			}
			var ev schemas.AuditEvent
			if err := json.Unmarshal(r.Event, &ev); err != nil {
				t.Errorf("event does not parse as an AuditEvent: %v", err)
			}
			if ev.Actor != "masker" || r.TimeMs != ev.Time || !strings.Contains(ev.Reason, "1111") || strings.Contains(ev.Reason, "4111 1111") {
				t.Errorf("unexpected archived event (actor %q, reason %q)", ev.Actor, ev.Reason)
			}
			decoded++
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if decoded != 12 || undecodable != 1 {
		t.Fatalf("decoded %d undecodable %d", decoded, undecodable)
	}
	assertNoPAN(t, e)
}
