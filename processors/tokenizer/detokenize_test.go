package tokenizer

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/schemas"
)

func TestDetokenizeIsAuditedAndAuthorised(t *testing.T) {
	e := newEnv(t)
	kr, _ := token.NewKeyring()
	e.produce(&kgo.Record{Key: []byte("d"), Value: e.encode(payment("d", "d", testCards[1])), Partition: 0})
	stop := e.run(e.tokenizer(kr), "g-"+t.Name())
	tp := e.decodeTokenized(e.waitCount(e.topics.PaymentsTokenized, 1, 30*time.Second))[0]
	stop()

	d := NewDetokenizer(token.NewVault(kr), e.serde, e.topics, e.opts)
	ctx := context.Background()
	for _, req := range []DetokenizeRequest{
		{Token: tp.Token, Reason: "", Actor: "User:alice"},
		{Token: tp.Token, Reason: "because", Actor: "User:alice"},
		{Token: tp.Token, Reason: "INC-1234 chargeback dispute", Actor: "", Operator: "alice"},
		{Token: "5555555555554444", Reason: "INC-1234 chargeback dispute", Actor: "User:alice"},
	} {
		if _, err := d.Detokenize(ctx, req); !errors.Is(err, ErrRefused) {
			t.Fatalf("request without reason/actor/token not refused: %v", err)
		}
	}
	// A keyring without the token's KEK (another keyring, version 1) is refused at decrypt.
	other, _ := token.NewKeyring()
	if _, err := NewDetokenizer(token.NewVault(other), e.serde, e.topics, e.opts).Detokenize(ctx,
		DetokenizeRequest{Token: tp.Token, Reason: "INC-1234 chargeback dispute", Actor: "User:mallory"}); err == nil {
		t.Fatal("a foreign keyring detokenized")
	}

	got, err := d.Detokenize(ctx, DetokenizeRequest{Token: tp.Token, Reason: "INC-1234 chargeback dispute", Actor: "User:alice", Operator: "Alice A."})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != testCards[1] {
		t.Fatalf("detokenized to a different PAN (len %d, last4 %s)", len(got), got[len(got)-4:])
	}
	// Two audited uses (mallory's error and alice's ok), none for refused requests.
	audits := e.read(e.topics.AuditEvents, false)
	var ops []schemas.AuditEvent
	for _, r := range audits {
		var a schemas.AuditEvent
		if err := e.serde.Decode(ctx, r.Value, &a); err != nil {
			t.Fatal(err)
		}
		if a.Action == "detokenize" {
			ops = append(ops, a)
		}
	}
	// Order-independent: mallory's error first, alice's success second.
	slices.SortFunc(ops, func(a, b schemas.AuditEvent) int { return strings.Compare(b.Actor, a.Actor) })
	if len(ops) != 2 || ops[0].Outcome != "error" || ops[0].Actor != "User:mallory" ||
		ops[1].Outcome != "ok" || ops[1].Actor != "User:alice" || ops[1].Attrs["operator_claimed"] != "Alice A." || ops[1].Action != "detokenize" ||
		ops[1].Subject != tp.Token || ops[1].Reason != "INC-1234 chargeback dispute" {
		t.Fatalf("audit events of detokenization: %+v", ops)
	}
	e.assertClean(e.allOutputs()...)
}
