package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
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
	extra := binary.MaxVarintLen64 + 1
	for i, a := range attrs {
		if i > 0 && a.Key == attrs[i-1].Key {
			return nil, fmt.Errorf("schemas: audit attribute %q given twice", a.Key)
		}
		extra += len(a.Key) + len(a.Value) + 2*binary.MaxVarintLen64
	}
	b, err := s.appendBody(b, id, auditType, ev, extra)
	if err != nil || len(attrs) == 0 {
		return b, err
	}
	// The body ends with attrs, empty: its single zero block is replaced
	// by one block of the attributes. AppendEncode lets hamba/avro write a
	// single attribute (a negative count and the block's byte size) and
	// writes several sorted (see appendSortedMap): the same here.
	b = b[:len(b)-1]
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
	return append(b, 0), nil
}

// varintLen is the length of n as an Avro (zig-zag) varint.
func varintLen(n int) int {
	var buf [binary.MaxVarintLen64]byte
	return len(binary.AppendVarint(buf[:0], int64(n)))
}
