package schemas_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pcistream/pcistream/schemas"
)

// TestAppendAuditMatchesEncode: AppendAudit writes the bytes Encode writes
// for the same event with its attributes in a map (the audit trail's bytes
// must not depend on which path wrote them), for 0, 1 and several
// attributes given in any order, appending after existing bytes.
func TestAppendAuditMatchesEncode(t *testing.T) {
	s, _ := serde(t)
	all := []schemas.AuditAttr{{"token", "tok_v1_abc"}, {"key_version", "1"}, {"event_type", "authorization"}, {"payment_id", "pay-1"}, {"z", ""}, {"a", strings.Repeat("é", 200)}}
	for n := 0; n <= len(all); n++ {
		attrs := append([]schemas.AuditAttr(nil), all[:n]...)
		m := map[string]string{}
		for _, a := range attrs {
			m[a.Key] = a.Value
		}
		ev := schemas.AuditEvent{ID: "id", Time: 1700000000000, Actor: "tokenizer", Action: "tokenize", Outcome: "ok", Topic: "payments.raw", Partition: 2, Offset: 12345, Subject: "ctx"}
		withMap := ev
		withMap.Attrs = m
		want, err := s.Encode(&withMap)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.AppendAudit([]byte("prefix"), &ev, attrs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(got, []byte("prefix")) || !bytes.Equal(got[len("prefix"):], want) {
			t.Fatalf("%d attrs: AppendAudit wrote %x, Encode %x", n, got, want)
		}
		var back schemas.AuditEvent
		if err := s.Decode(context.Background(), got[len("prefix"):], &back); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(back.Attrs) != fmt.Sprint(m) && !(n == 0 && len(back.Attrs) == 0) {
			t.Fatalf("%d attrs decode to %v", n, back.Attrs)
		}
	}
}

func TestAppendAuditRejectsMisuse(t *testing.T) {
	s, _ := serde(t)
	ev := schemas.AuditEvent{ID: "id", Action: "tokenize"}
	if _, err := s.AppendAudit(nil, &ev, []schemas.AuditAttr{{"k", "1"}, {"k", "2"}}); err == nil {
		t.Fatal("a key given twice was accepted")
	}
	ev.Attrs = map[string]string{"k": "v"}
	if _, err := s.AppendAudit(nil, &ev, nil); err == nil {
		t.Fatal("attributes in ev.Attrs were accepted (they would be dropped)")
	}
}

// TestAppendEncodeAppends: AppendEncode keeps what b held and encodes like
// Encode, also when called many times (pooled writers).
func TestAppendEncodeAppends(t *testing.T) {
	s, _ := serde(t)
	for i := 0; i < 20; i++ {
		ev := schemas.AuditEvent{ID: fmt.Sprint("id", i), Action: "tokenize", Subject: strings.Repeat("x", i*50)}
		want, err := s.Encode(&ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.AppendEncode([]byte{1, 2, 3}, &ev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, append([]byte{1, 2, 3}, want...)) {
			t.Fatalf("AppendEncode wrote %x, Encode %x", got, want)
		}
	}
}
