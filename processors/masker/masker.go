// Package masker is the log masking worker: it reads raw log records
// (logs.raw), masks every PAN in the record key, value and header values,
// and writes the result to logs.sanitized, exactly once through the shared
// loop (internal/eos). It is a pure transform: bytes in, masked bytes out,
// whatever the format (text, JSON, binary), so nothing is ever passed
// through unmasked. Records too large to handle go to logs.dlq with a reason
// and a masked, truncated copy. Each transaction carries one audit event per
// input partition with counts (records, PANs masked, dead letters), never a
// PAN.
package masker

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/internal/optcheck"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/redact"
	"github.com/pcistream/pcistream/internal/telemetry"
	"github.com/pcistream/pcistream/schemas"
)

// Name is the processor's name: its actor in audit events, the eos loop
// name (metrics label, default group and transactional id prefix).
const Name = "masker"

// DLQ reason codes (header ReasonHeader and DLQRecord.ReasonCode).
const (
	ReasonOversize = "oversize"
)

// ReasonHeader is the header carrying the reason code on logs.dlq records.
const ReasonHeader = "pcistream-dlq-reason"

// Defaults.
const (
	DefaultMaxRecordBytes = 1 << 20  // key + value + headers
	maxMaskedCopy         = 64 << 10 // bytes of masked value kept in a DLQ record
)

// Encoder encodes pcistream's Avro types in the Confluent wire format
// (*schemas.Serde).
type Encoder interface {
	Encode(v any) ([]byte, error)
}

type cfg struct {
	topics   config.Topics
	policy   pan.Policy
	maxBytes int
	det      *pan.Detector
	log      *slog.Logger
	reg      prometheus.Registerer
}

// Opt configures a Masker.
type Opt func(*cfg)

// Topics sets the topic names (default config.Default().Topics): the masker
// reads LogsRaw and writes LogsSanitized, LogsDLQ and AuditEvents.
func Topics(t config.Topics) Opt { return func(c *cfg) { c.topics = t } }

// Policy sets the masking policy (default pan.First6Last4).
func Policy(p pan.Policy) Opt { return func(c *cfg) { c.policy = p } }

// MaxRecordBytes sets the largest record (key + value + headers) masked
// and forwarded; larger ones go to the DLQ (default 1 MiB).
func MaxRecordBytes(n int) Opt { return func(c *cfg) { c.maxBytes = n } }

// Detector sets the PAN detector (default pan.New()).
func Detector(d *pan.Detector) Opt { return func(c *cfg) { c.det = d } }

// Logger sets the logger (it should mask PANs: internal/logmask).
func Logger(l *slog.Logger) Opt { return func(c *cfg) { c.log = l } }

// Registerer registers the masker's metrics (default: none).
func Registerer(r prometheus.Registerer) Opt { return func(c *cfg) { c.reg = r } }

// Masker masks log records. It implements eos.Processor, eos.BatchEnder and
// eos.Ender; one Masker serves one loop.
type Masker struct {
	cfg cfg
	enc Encoder

	pansMasked *prometheus.CounterVec // policy, topic
	dlq        *prometheus.CounterVec // topic, reason

	batch   map[tp]*partStats // counts of the open transaction
	pending []counts          // metric increments applied when it commits
}

type tp struct {
	topic     string
	partition int32
}

type partStats struct {
	first, last int64
	lastTime    int64
	records     int
	pans        int
	dlq         int
	bytes       int
}

type counts struct {
	topic     string
	pans, dlq int
}

// New returns a Masker that encodes audit events and DLQ records with enc.
func New(enc Encoder, opts ...Opt) (*Masker, error) {
	c := cfg{topics: config.Default().Topics, policy: pan.First6Last4, maxBytes: DefaultMaxRecordBytes}
	for _, o := range opts {
		o(&c)
	}
	if enc == nil {
		return nil, fmt.Errorf("masker: an encoder (schemas.Serde) is required for audit events and DLQ records")
	}
	if err := optcheck.Check("masker", optcheck.AtLeast("MaxRecordBytes", c.maxBytes, 1), optcheck.NotEmpty("Topics: logs raw", c.topics.LogsRaw),
		optcheck.NotEmpty("Topics: logs sanitized", c.topics.LogsSanitized), optcheck.NotEmpty("Topics: logs DLQ", c.topics.LogsDLQ)); err != nil {
		return nil, err
	}
	if c.det == nil {
		c.det = pan.New()
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	m := &Masker{cfg: c, enc: enc, batch: map[tp]*partStats{}}
	m.pansMasked = telemetry.Register(c.reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pcistream_pans_masked_total",
		Help: "PANs masked in committed transactions, by masking policy and source topic.",
	}, []string{"policy", "topic"}))
	m.dlq = telemetry.Register(c.reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pcistream_masker_dlq_total",
		Help: "Records the masker sent to the dead-letter topic in committed transactions, by source topic and reason.",
	}, []string{"topic", "reason"}))
	return m, nil
}

// NewLoop returns the exactly-once loop running m over the raw logs topic.
// clientOpts connect to the cluster (kafkax.Opts); opts are passed to
// eos.New after the masker's own, so they can override group or
// transactional id.
func NewLoop(m *Masker, clientOpts []kgo.Opt, opts ...eos.Opt) (*eos.Loop, error) {
	base := []eos.Opt{
		eos.Name(Name),
		eos.Topics(m.cfg.topics.LogsRaw),
		eos.OutputTopics(m.cfg.topics.LogsSanitized, m.cfg.topics.LogsDLQ, m.cfg.topics.AuditEvents),
		eos.ClientOpts(clientOpts...),
		eos.Logger(m.cfg.log),
		eos.Registerer(m.cfg.reg),
	}
	return eos.New(m, append(base, opts...)...)
}

// Process masks one record: key, value and header values, as bytes.
func (m *Masker) Process(_ context.Context, rec *kgo.Record, out *eos.Out) error {
	recs, err := m.process(rec, nil)
	for _, r := range recs {
		out.Emit(r)
	}
	return err
}

// EndBatch emits one audit event per input partition of the transaction:
// the offset range and the counts, never a PAN.
func (m *Masker) EndBatch(_ context.Context, out *eos.Out) error {
	recs, err := m.endBatch(nil)
	for _, r := range recs {
		out.Emit(r)
	}
	return err
}

// process appends the records produced for rec to out.
func (m *Masker) process(rec *kgo.Record, out []*kgo.Record) ([]*kgo.Record, error) {
	st := m.stats(rec)
	size := len(rec.Key) + len(rec.Value)
	for _, h := range rec.Headers {
		size += len(h.Key) + len(h.Value)
	}
	st.bytes += size
	if size > m.cfg.maxBytes {
		return m.deadLetter(rec, out, st, ReasonOversize,
			fmt.Sprintf("record of %d bytes exceeds the masker's limit of %d bytes (--max-record-bytes)", size, m.cfg.maxBytes))
	}
	r := &kgo.Record{
		Topic:     m.cfg.topics.LogsSanitized,
		Timestamp: rec.Timestamp,
	}
	var n, total int
	r.Key, n = m.mask(rec.Key)
	total += n
	r.Value, n = m.mask(rec.Value)
	total += n
	if len(rec.Headers) > 0 {
		r.Headers = make([]kgo.RecordHeader, len(rec.Headers))
		for i, h := range rec.Headers {
			k, nk := m.cfg.det.MaskString(h.Key, m.cfg.policy)
			v, nv := m.mask(h.Value)
			r.Headers[i] = kgo.RecordHeader{Key: k, Value: v}
			total += nk + nv
		}
	}
	st.pans += total
	return append(out, r), nil
}

// mask returns b masked (a new slice when it held a PAN, b itself
// otherwise: records are not reused after the transaction).
func (m *Masker) mask(b []byte) ([]byte, int) {
	if b == nil {
		return nil, 0
	}
	if !m.cfg.det.Contains(b) {
		return b, 0
	}
	return m.cfg.det.Mask(make([]byte, 0, len(b)), b, m.cfg.policy)
}

func (m *Masker) stats(rec *kgo.Record) *partStats {
	k := tp{rec.Topic, rec.Partition}
	st := m.batch[k]
	if st == nil {
		st = &partStats{first: rec.Offset}
		m.batch[k] = st
	}
	st.last = rec.Offset
	st.lastTime = rec.Timestamp.UnixMilli()
	st.records++
	return st
}

// deadLetter writes rec's masked, truncated copy to the DLQ with a reason,
// and an audit event for it.
func (m *Masker) deadLetter(rec *kgo.Record, out []*kgo.Record, st *partStats, code, reason string) ([]*kgo.Record, error) {
	d := schemas.DLQRecord{
		Processor:         Name,
		ReasonCode:        code,
		Reason:            reason,
		SourceTopic:       rec.Topic,
		SourcePartition:   rec.Partition,
		SourceOffset:      rec.Offset,
		SourceTimestampMs: rec.Timestamp.UnixMilli(),
	}
	// The copy is redacted whole before truncating (a cut through a PAN
	// would leave a fragment no rule recognises), and does not rely on
	// detection alone: see internal/redact.
	red := redact.New(m.cfg.det, m.cfg.policy)
	nk, nv := len(m.cfg.det.Find(nil, rec.Key)), len(m.cfg.det.Find(nil, rec.Value))
	d.MaskedKey = red.Bytes(rec.Key)
	d.MaskedValue = red.Bytes(rec.Value)
	if len(d.MaskedValue) > maxMaskedCopy {
		d.MaskedValue, d.Truncated = d.MaskedValue[:maxMaskedCopy], true
	}
	if len(d.MaskedKey) > maxMaskedCopy {
		d.MaskedKey, d.Truncated = d.MaskedKey[:maxMaskedCopy], true
	}
	st.pans += nk + nv
	st.dlq++
	v, err := m.enc.Encode(&d)
	if err != nil {
		// Our own schema failing to encode is a bug, not bad input: abort
		// the transaction rather than drop the record.
		return out, fmt.Errorf("encoding DLQ record: %w", err)
	}
	coords := rec.Topic + "/" + strconv.FormatInt(int64(rec.Partition), 10) + "/" + strconv.FormatInt(rec.Offset, 10)
	headers := []kgo.RecordHeader{{Key: ReasonHeader, Value: []byte(code)}}
	for _, h := range rec.Headers {
		// CVV-like headers are dropped, PAN-like ones lose every digit.
		c := redact.Classify(h.Key)
		if c == redact.CVV {
			continue
		}
		hv := red.Field(c, h.Value)
		if len(hv) > maxMaskedCopy {
			hv = hv[:maxMaskedCopy]
		}
		headers = append(headers, kgo.RecordHeader{Key: red.String(h.Key), Value: hv})
	}
	out = append(out, &kgo.Record{Topic: m.cfg.topics.LogsDLQ, Key: []byte(coords), Value: v, Headers: headers, Timestamp: rec.Timestamp})
	m.cfg.log.Warn("record sent to the dead-letter topic", "reason", code, "source", coords, "dlq", m.cfg.topics.LogsDLQ)
	ev := schemas.AuditEvent{
		ID:        AuditID(Name, "dlq", rec.Topic, rec.Partition, rec.Offset),
		Time:      rec.Timestamp.UnixMilli(),
		Actor:     Name,
		Action:    "dlq",
		Outcome:   "rejected",
		Topic:     rec.Topic,
		Partition: rec.Partition,
		Offset:    rec.Offset,
		Subject:   coords,
		Reason:    code,
		Attrs:     map[string]string{"reason": reason, "dlq_topic": m.cfg.topics.LogsDLQ, "pans_masked": strconv.Itoa(nk + nv)},
	}
	return m.appendAudit(out, ev)
}

// endBatch appends the batch's audit events to out.
func (m *Masker) endBatch(out []*kgo.Record) ([]*kgo.Record, error) {
	// Sorted, so a replay of the same offsets yields the same records in
	// the same order.
	keys := make([]tp, 0, len(m.batch))
	for k := range m.batch {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b tp) int {
		if c := cmp.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return cmp.Compare(a.partition, b.partition)
	})
	for _, k := range keys {
		st := m.batch[k]
		ev := schemas.AuditEvent{
			ID:        AuditID(Name, "mask", k.topic, k.partition, st.last),
			Time:      st.lastTime,
			Actor:     Name,
			Action:    "mask",
			Outcome:   "ok",
			Topic:     k.topic,
			Partition: k.partition,
			Offset:    st.last,
			Subject:   k.topic + "/" + strconv.FormatInt(int64(k.partition), 10) + "/" + strconv.FormatInt(st.first, 10) + "-" + strconv.FormatInt(st.last, 10),
			Attrs: map[string]string{
				"first_offset": strconv.FormatInt(st.first, 10),
				"last_offset":  strconv.FormatInt(st.last, 10),
				"records":      strconv.Itoa(st.records),
				"bytes":        strconv.Itoa(st.bytes),
				"pans_masked":  strconv.Itoa(st.pans),
				"dlq":          strconv.Itoa(st.dlq),
				"policy":       m.cfg.policy.String(),
				"output_topic": m.cfg.topics.LogsSanitized,
			},
		}
		var err error
		if out, err = m.appendAudit(out, ev); err != nil {
			return out, err
		}
		m.pending = append(m.pending, counts{topic: k.topic, pans: st.pans, dlq: st.dlq})
	}
	clear(m.batch)
	return out, nil
}

// Ended applies the batch's metric increments when the transaction
// committed, and drops them otherwise (the records will be processed again).
func (m *Masker) Ended(committed bool) {
	if committed {
		for _, c := range m.pending {
			if c.pans > 0 {
				m.pansMasked.WithLabelValues(m.cfg.policy.String(), c.topic).Add(float64(c.pans))
			}
			if c.dlq > 0 {
				m.dlq.WithLabelValues(c.topic, ReasonOversize).Add(float64(c.dlq))
			}
		}
	}
	m.pending = m.pending[:0]
	clear(m.batch)
}

func (m *Masker) appendAudit(out []*kgo.Record, ev schemas.AuditEvent) ([]*kgo.Record, error) {
	b, err := m.enc.Encode(&ev)
	if err != nil {
		return out, fmt.Errorf("encoding audit event: %w", err)
	}
	return append(out, &kgo.Record{Topic: m.cfg.topics.AuditEvents, Key: []byte(ev.ID), Value: b, Timestamp: time.UnixMilli(ev.Time)}), nil
}

// AuditID is the deterministic audit event id of the foundation contract:
// hex(sha256(actor|action|topic|partition|offset))[:32].
func AuditID(actor, action, topic string, partition int32, offset int64) string {
	h := sha256.Sum256([]byte(actor + "|" + action + "|" + topic + "|" + strconv.FormatInt(int64(partition), 10) + "|" + strconv.FormatInt(offset, 10)))
	return hex.EncodeToString(h[:])[:32]
}

// JSONEncoder encodes values as JSON: the documented alternative to Avro
// for deployments without a schema registry (audit.events and logs.dlq then
// carry JSON).
type JSONEncoder struct{}

// Encode implements Encoder.
func (JSONEncoder) Encode(v any) ([]byte, error) { return json.Marshal(v) }
