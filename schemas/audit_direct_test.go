package schemas

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
)

// TestAuditDirectMatchesReflective: the hand-written audit encoder writes
// the bytes hamba/avro writes, for odd values too (negative numbers, long
// and non-ASCII strings, 0 to 3 attributes), and is used for the shipped
// schema.
func TestAuditDirectMatchesReflective(t *testing.T) {
	readers := readersOf(t)
	if !auditLayoutIs(readers[auditType]) {
		t.Fatal("the shipped audit schema does not take the direct encoder")
	}
	direct := &Serde{readers: readers, ids: map[reflect.Type]int{auditType: 77}, auditDirect: true}
	reflective := &Serde{readers: readers, ids: map[reflect.Type]int{auditType: 77}}
	evs := []AuditEvent{
		{},
		{ID: "0123456789abcdef0123456789abcdef", Time: 1700000000123, Actor: "tokenizer", Action: "tokenize", Outcome: "ok",
			Topic: "payments.raw", Partition: 2, Offset: 1 << 40, Subject: "ctx", Reason: ""},
		{ID: "x", Time: -5, Actor: strings.Repeat("ä", 300), Partition: -1, Offset: -1, Reason: "why\x00not"},
	}
	attrSets := [][]AuditAttr{nil, {{"k", "v"}}, {{"token", "tok_v1_x"}, {"a", ""}, {"é", strings.Repeat("z", 200)}}}
	for i, ev := range evs {
		for j, attrs := range attrSets {
			a1 := append([]AuditAttr(nil), attrs...)
			a2 := append([]AuditAttr(nil), attrs...)
			got, err := direct.AppendAudit([]byte("p"), &ev, a1)
			if err != nil {
				t.Fatal(err)
			}
			want, err := reflective.AppendAudit([]byte("p"), &ev, a2)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("event %d attrs %d: direct %x, reflective %x", i, j, got, want)
			}
		}
	}
}

func TestAuditLayoutChangeFallsBack(t *testing.T) {
	sch := avro.MustParse(`{"type":"record","name":"A","fields":[{"name":"id","type":"string"},{"name":"attrs","type":{"type":"map","values":"string"}}]}`)
	if auditLayoutIs(sch) {
		t.Fatal("a different audit layout was taken for the direct encoder")
	}
}
