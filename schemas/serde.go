package schemas

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sync"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/pcistream/pcistream/internal/config"
)

// Errors a Decode can return, for DLQ reason codes. Test with errors.Is.
var (
	// ErrMalformed: not the Confluent wire format, or Avro that does not
	// decode under the writer schema.
	ErrMalformed = errors.New("malformed record")
	// ErrUnknownSchemaID: the registry does not know the record's schema id.
	ErrUnknownSchemaID = errors.New("unknown schema id")
	// ErrIncompatible: the writer schema cannot be read as the wanted type.
	ErrIncompatible = errors.New("incompatible writer schema")
)

// Serde encodes and decodes pcistream's types in the Confluent wire format.
// Encoding uses the schema id registered for the type's subject; decoding
// fetches the writer schema by id (cached) and resolves it against the Go
// type's reader schema, so producers on an older or newer compatible schema
// version decode fine. Safe for concurrent use.
type Serde struct {
	cl      *sr.Client
	readers map[reflect.Type]avro.Schema
	ids     map[reflect.Type]int // encode ids
	mu      sync.RWMutex
	writers map[writerKey]avro.Schema // resolved per (id, type)
	missing map[int]bool
	// auditDirect: the audit schema is the layout appendAuditDirect
	// writes, so AppendAudit need not go through reflection; likewise
	// vaultDirect, and eventSymbols (non-nil) for tokenized payments
	// (direct.go).
	auditDirect, vaultDirect bool
	eventSymbols             []string
}

type writerKey struct {
	id int
	t  reflect.Type
}

// NewSerde looks up the registered schema ids for t's subjects. Register the
// schemas first (Register, or `pcistream schemas register`).
func NewSerde(ctx context.Context, cl *sr.Client, t config.Topics) (*Serde, error) {
	defs, err := Defs()
	if err != nil {
		return nil, err
	}
	sds, err := subjectDefs(t)
	if err != nil {
		return nil, err
	}
	s := &Serde{
		cl:      cl,
		readers: map[reflect.Type]avro.Schema{},
		ids:     map[reflect.Type]int{},
		writers: map[writerKey]avro.Schema{},
		missing: map[int]bool{},
	}
	for _, d := range defs {
		s.readers[d.Type] = d.Schema
	}
	s.auditDirect = auditLayoutIs(s.readers[auditType])
	s.vaultDirect = layoutIs(s.readers[vaultType], vaultLayout)
	s.eventSymbols = eventSymbols(s.readers[tokenizedType])
	for _, sd := range sds {
		subj, d := sd.subject, sd.def
		if _, ok := s.ids[d.Type]; ok {
			continue
		}
		ss, err := cl.LookupSchema(ctx, subj, sr.Schema{Schema: d.Text, Type: sr.TypeAvro})
		if err != nil {
			var re *sr.ResponseError
			if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
				return nil, fmt.Errorf("schema for %s is not registered (%w): run `pcistream schemas register`", subj, err)
			}
			if errors.As(err, &re) {
				return nil, fmt.Errorf("schema registry answered %d looking up %s (%w): check --registry-url and its credentials", re.StatusCode, subj, err)
			}
			if ue := unreachable(err); ue != nil {
				return nil, fmt.Errorf("looking up %s: %w", subj, ue)
			}
			return nil, fmt.Errorf("schema registry unreachable looking up %s (%w): start `pcistream dev` or check --registry-url", subj, err)
		}
		s.ids[d.Type] = ss.ID
		s.writers[writerKey{ss.ID, d.Type}] = d.Schema
	}
	return s, nil
}

// ID returns the schema id Encode uses for values of v's type.
func (s *Serde) ID(v any) (int, bool) {
	id, ok := s.ids[indirect(reflect.TypeOf(v))]
	return id, ok
}

// Encode returns v (a pointer or value of one of this package's types) in
// the Confluent wire format.
func (s *Serde) Encode(v any) ([]byte, error) {
	return s.AppendEncode(nil, v)
}

// AppendEncode appends the encoding of v to b.
func (s *Serde) AppendEncode(b []byte, v any) ([]byte, error) {
	t := indirect(reflect.TypeOf(v))
	id, ok := s.ids[t]
	if !ok {
		return nil, fmt.Errorf("schemas: no registered schema for %v", t)
	}
	var attrs map[string]string
	switch ev := v.(type) {
	case *TokenizedPayment:
		if s.eventSymbols != nil {
			return s.appendTokenized(b, id, ev)
		}
	case *VaultEntry:
		if s.vaultDirect {
			return appendVault(b, id, ev), nil
		}
	case *AuditEvent:
		if len(ev.Attrs) > 1 {
			cp := *ev
			attrs, cp.Attrs = ev.Attrs, nil
			v = &cp
		}
	case AuditEvent:
		if len(ev.Attrs) > 1 {
			attrs, ev.Attrs = ev.Attrs, nil
			v = &ev
		}
	}
	extra := binary.MaxVarintLen64 + 1 // the block's count and the final zero
	for k, v := range attrs {
		extra += len(k) + len(v) + 2*binary.MaxVarintLen64
	}
	b, err := s.appendBody(b, id, t, v, extra)
	if err != nil || attrs == nil {
		return b, err
	}
	return appendSortedMap(b[:len(b)-1], attrs), nil
}

// writers are reused Avro writers: encoding straight into one and copying
// its bytes once into the output costs one allocation per record, where
// avro.Marshal's copy and the appends after it cost three (this runs for
// several records per tokenized event).
var writers = sync.Pool{New: func() any { return avro.NewWriter(nil, 512) }}

// maxPooledWriter bounds the buffer a pooled writer keeps, so one huge
// record does not pin its buffer for the process's lifetime.
const maxPooledWriter = 64 << 10

// appendBody appends the wire-format header (magic byte, id) and v's Avro
// body to b, growing b once to fit extra more bytes.
func (s *Serde) appendBody(b []byte, id int, t reflect.Type, v any, extra int) ([]byte, error) {
	w := writers.Get().(*avro.Writer)
	w.Reset(nil)
	w.Error = nil
	w.WriteVal(s.readers[t], v)
	if err := w.Error; err != nil {
		w.Error = nil
		writers.Put(w)
		return nil, fmt.Errorf("schemas: encode %v: %w", t.Name(), err)
	}
	body := w.Buffer()
	if need := 5 + len(body) + extra; cap(b)-len(b) < need {
		nb := make([]byte, len(b), len(b)+need)
		copy(nb, b)
		b = nb
	}
	b = append(b, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[len(b)-4:], uint32(id))
	b = append(b, body...)
	if cap(body) <= maxPooledWriter {
		clear(body) // a raw payment's encoding holds a PAN: do not leave it in the pool
		writers.Put(w)
	}
	return b, nil
}

// appendSortedMap appends m as one Avro map block with sorted keys and the
// terminating zero block. hamba/avro writes Go maps in iteration order,
// which Go randomises: equal audit events would encode to different bytes,
// and a replay of the same offsets would not be byte-identical. The audit
// schema keeps attrs as its last field (TestAuditAttrsIsLastField), so the
// event is encoded with empty attrs, whose final zero block is replaced by
// this.
func appendSortedMap(b []byte, m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendVarint(b, int64(len(keys)))
	for _, k := range keys {
		b = binary.AppendVarint(b, int64(len(k)))
		b = append(b, k...)
		v := m[k]
		b = binary.AppendVarint(b, int64(len(v)))
		b = append(b, v...)
	}
	return append(b, 0)
}

// SchemaID returns the schema id in a wire-format record's header.
func SchemaID(b []byte) (int, error) {
	if len(b) < 5 || b[0] != 0 {
		return 0, fmt.Errorf("%w: no Confluent wire-format header (magic byte 0 + schema id)", ErrMalformed)
	}
	return int(binary.BigEndian.Uint32(b[1:5])), nil
}

// Decode decodes a wire-format record into v, a pointer to one of this
// package's types.
func (s *Serde) Decode(ctx context.Context, b []byte, v any) error {
	id, err := SchemaID(b)
	if err != nil {
		return err
	}
	t := indirect(reflect.TypeOf(v))
	sch, err := s.writer(ctx, id, t)
	if err != nil {
		return err
	}
	return unmarshalStrict(sch, b[5:], v, id)
}

var readers = sync.Pool{New: func() any { return avro.NewReader(nil, 0) }}

// unmarshalStrict decodes exactly one value filling data. avro.Unmarshal
// treats running out of input as success (zero values), which would let a
// truncated or empty record through as a valid one.
func unmarshalStrict(sch avro.Schema, data []byte, v any, id int) error {
	r := readers.Get().(*avro.Reader)
	defer readers.Put(r)
	r.Reset(data)
	r.Error = nil // Reset keeps the error of the previous use (the EOF Peek sets below)
	r.ReadVal(sch, v)
	if r.Error != nil {
		return fmt.Errorf("%w: schema id %d: %v", ErrMalformed, id, r.Error)
	}
	r.Peek()
	if r.Error == nil {
		return fmt.Errorf("%w: schema id %d: trailing bytes after the record", ErrMalformed, id)
	}
	return nil
}

func (s *Serde) writer(ctx context.Context, id int, t reflect.Type) (avro.Schema, error) {
	k := writerKey{id, t}
	s.mu.RLock()
	sch, ok := s.writers[k]
	missing := s.missing[id]
	s.mu.RUnlock()
	if ok {
		return sch, nil
	}
	if missing {
		return nil, fmt.Errorf("%w: %d", ErrUnknownSchemaID, id)
	}
	reader, ok := s.readers[t]
	if !ok {
		return nil, fmt.Errorf("schemas: %v is not a pcistream schema type", t)
	}
	text, err := s.cl.SchemaByID(ctx, id)
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && (re.ErrorCode == 40403 || re.StatusCode == 404) {
			s.mu.Lock()
			s.missing[id] = true // ids are immutable; don't ask again per record
			s.mu.Unlock()
			return nil, fmt.Errorf("%w: %d", ErrUnknownSchemaID, id)
		}
		return nil, fmt.Errorf("schema registry: fetch schema %d: %w", id, err)
	}
	w, err := avro.Parse(text.Schema)
	if err != nil {
		return nil, fmt.Errorf("%w: schema id %d does not parse: %v", ErrIncompatible, id, err)
	}
	resolved, err := avro.NewSchemaCompatibility().Resolve(reader, w)
	if err != nil {
		return nil, fmt.Errorf("%w: schema id %d as %s: %v", ErrIncompatible, id, t.Name(), err)
	}
	s.mu.Lock()
	s.writers[k] = resolved
	s.mu.Unlock()
	return resolved, nil
}

// IsUnavailable reports whether err means the registry could not be asked,
// rather than that the record is bad: such errors should stop the loop (the
// data stays in Kafka), not send the record to a DLQ.
func IsUnavailable(err error) bool {
	return err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownSchemaID) && !errors.Is(err, ErrIncompatible)
}

// DecodeRawPaymentJSON decodes the documented JSON alternative for raw
// payments: an object with the Avro field names.
func DecodeRawPaymentJSON(b []byte) (RawPayment, error) {
	var p RawPayment
	if err := json.Unmarshal(b, &p); err != nil {
		return RawPayment{}, fmt.Errorf("%w: JSON: %v", ErrMalformed, err)
	}
	if p.EventType == "" {
		p.EventType = Authorization
	}
	return p, nil
}

func indirect(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}
