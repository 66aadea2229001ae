package schemas

import (
	"encoding/binary"

	"errors"
	"fmt"
	"github.com/hamba/avro/v2"
	"reflect"
)

// AuditAttr is one attribute of an audit event, for AppendAudit.
type AuditAttr struct {
	Key, Value string
}

var auditType = reflect.TypeOf(AuditEvent{})

// AppendAudit appends ev in the wire format with attrs as its attrs map: the
// same bytes as AppendEncode of ev with those attributes in ev.Attrs, without
// building a map (the tokenizer writes an audit event per payment). It sorts
// attrs in place; keys must be distinct, and ev.Attrs must be empty.
func (s *Serde) AppendAudit(b []byte, ev *AuditEvent, attrs []AuditAttr) ([]byte, error) {
	if len(ev.Attrs) > 0 {
		return nil, errors.New("schemas: AppendAudit takes the attributes as attrs, not in ev.Attrs")
	}
	id, ok := s.ids[auditType]
	if !ok {
		return nil, fmt.Errorf("schemas: no registered schema for %v", auditType)
	}
	// Insertion sort: a handful of attributes, no allocation.
	for i := 1; i < len(attrs); i++ {
		for j := i; j > 0 && attrs[j].Key < attrs[j-1].Key; j-- {
			attrs[j], attrs[j-1] = attrs[j-1], attrs[j]
		}
	}
	extra := 2*binary.MaxVarintLen64 + 1 // the block's count and size, the final zero
	for i, a := range attrs {
		if i > 0 && a.Key == attrs[i-1].Key {
			return nil, fmt.Errorf("schemas: audit attribute %q given twice", a.Key)
		}
		extra += varintLen(len(a.Key)) + len(a.Key) + varintLen(len(a.Value)) + len(a.Value)
	}
	if s.auditDirect {
		return appendAuditDirect(b, id, ev, attrs, extra), nil
	}
	b, err := s.appendBody(b, id, auditType, ev, extra)
	if err != nil || len(attrs) == 0 {
		return b, err
	}
	return appendAttrs(b[:len(b)-1], attrs), nil
}

// auditLayout is the audit schema's fields, in order, as appendAuditDirect
// writes them.
var auditLayout = []struct {
	name string
	typ  avro.Type
}{
	{"id", avro.String}, {"time_ms", avro.Long}, {"actor", avro.String}, {"action", avro.String},
	{"outcome", avro.String}, {"topic", avro.String}, {"partition", avro.Int}, {"offset", avro.Long},
	{"subject", avro.String}, {"reason", avro.String}, {"attrs", avro.Map},
}

// auditLayoutIs reports whether sch is the record appendAuditDirect writes:
// a schema change falls back to the reflective encoder, never to wrong bytes.
func auditLayoutIs(sch avro.Schema) bool {
	rs, ok := sch.(*avro.RecordSchema)
	if !ok || len(rs.Fields()) != len(auditLayout) {
		return false
	}
	for i, f := range rs.Fields() {
		if f.Name() != auditLayout[i].name || f.Type().Type() != auditLayout[i].typ {
			return false
		}
	}
	m, ok := rs.Fields()[len(auditLayout)-1].Type().(*avro.MapSchema)
	return ok && m.Values().Type() == avro.String
}

// appendAuditDirect writes what hamba/avro writes for ev (Avro's binary
// encoding: zig-zag varints, length-prefixed strings) with attrs as its
// map, in one allocation at most.
func appendAuditDirect(b []byte, id int, ev *AuditEvent, attrs []AuditAttr, extra int) []byte {
	need := 5 + extra + varintLen(int(ev.Time)) + varintLen(int(ev.Partition)) + varintLen(int(ev.Offset))
	for _, s := range [...]string{ev.ID, ev.Actor, ev.Action, ev.Outcome, ev.Topic, ev.Subject, ev.Reason} {
		need += varintLen(len(s)) + len(s)
	}
	if cap(b)-len(b) < need {
		nb := make([]byte, len(b), len(b)+need)
		copy(nb, b)
		b = nb
	}
	b = append(b, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[len(b)-4:], uint32(id))
	str := func(b []byte, s string) []byte {
		return append(binary.AppendVarint(b, int64(len(s))), s...)
	}
	b = str(b, ev.ID)
	b = binary.AppendVarint(b, ev.Time)
	b = str(b, ev.Actor)
	b = str(b, ev.Action)
	b = str(b, ev.Outcome)
	b = str(b, ev.Topic)
	b = binary.AppendVarint(b, int64(ev.Partition))
	b = binary.AppendVarint(b, ev.Offset)
	b = str(b, ev.Subject)
	b = str(b, ev.Reason)
	if len(attrs) == 0 {
		return append(b, 0)
	}
	return appendAttrs(b, attrs)
}

// appendAttrs appends attrs (sorted) as the attrs map: one block and the
// terminating zero block. AppendEncode lets hamba/avro write a single
// attribute (a negative count and the block's byte size) and writes several
// sorted without the size (see appendSortedMap): the same here.
func appendAttrs(b []byte, attrs []AuditAttr) []byte {
	if len(attrs) == 1 {
		a := attrs[0]
		size := varintLen(len(a.Key)) + len(a.Key) + varintLen(len(a.Value)) + len(a.Value)
		b = binary.AppendVarint(b, -1)
		b = binary.AppendVarint(b, int64(size))
	} else {
		b = binary.AppendVarint(b, int64(len(attrs)))
	}
	for _, a := range attrs {
		b = binary.AppendVarint(b, int64(len(a.Key)))
		b = append(b, a.Key...)
		b = binary.AppendVarint(b, int64(len(a.Value)))
		b = append(b, a.Value...)
	}
	return append(b, 0)
}

// varintLen is the length of n as an Avro (zig-zag) varint.
func varintLen(n int) int {
	var buf [binary.MaxVarintLen64]byte
	return len(binary.AppendVarint(buf[:0], int64(n)))
}
