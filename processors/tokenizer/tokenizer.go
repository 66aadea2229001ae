// Package tokenizer is pcistream's tokenizer: it consumes raw payment events
// (payments.raw), replaces the PAN with a keyed token, and in one Kafka
// transaction with its input offsets writes the tokenized event, the vault
// entry (the PAN under envelope encryption) and an audit event. Invalid input
// goes to the DLQ with a reason and a masked copy; the pipeline keeps going.
//
// After the tokenizer no consumer sees a PAN, and the CVV is dropped: it is
// validated in memory and never written anywhere, not even to the DLQ.
//
// Input is Avro in the Confluent wire format (magic byte 0, schema id), or,
// as a documented alternative, a JSON object with the same field names as
// raw_payment.avsc (detected by a leading '{'). Producers key payments.raw by
// idempotency key, and the idempotency-state topic has as many partitions as
// payments.raw: a retry then lands on the partition that holds its state.
//
// Replays: every output is a function of the input record and the keyring,
// so re-running the same offsets yields byte-identical tokenized events, DLQ
// records, audit events and state entries (output timestamps are the input's).
// Vault entries are the exception by design: each seal draws a fresh data key
// and nonce (reusing an AES-GCM nonce under a key is catastrophic, and KMS
// wrapping is randomised), so a replayed vault entry has other ciphertext that
// decrypts to the same PAN under the same token; the topic is compacted by
// token, so the latest one wins.
//
// The transform is Transform; Processor adapts it to the shared exactly-once
// loop (internal/eos) and keeps the idempotency state exact under it.
package tokenizer

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/redact"
	"github.com/pcistream/pcistream/internal/state"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/schemas"
)

// Name is the processor's name: its actor in audit events, its DLQ
// "processor" field and its metrics label.
const Name = "tokenizer"

// DefaultMaxRecordBytes bounds the input records the tokenizer accepts; a
// payment event is a few hundred bytes.
const DefaultMaxRecordBytes = 1 << 20

// maxMaskedCopy bounds the masked copy kept on a DLQ record.
const maxMaskedCopy = 64 << 10

// Opt configures a Tokenizer.
type Opt func(*cfg)

type cfg struct {
	topics       config.Topics
	window       time.Duration
	maxBytes     int
	policy       pan.Policy
	logger       *slog.Logger
	stateOpts    []kgo.Opt
	stateDir     string
	cacheBytes   int64
	filterBytes  int64
	jsonEntries  bool
	stateMetrics *state.Metrics
}

// Topics sets the topic names (default config.DefaultTopics()).
func Topics(t config.Topics) Opt { return func(c *cfg) { c.topics = t } }

// IdempotencyWindow sets how long an idempotency key suppresses duplicates
// (default 24h), measured between the input records' timestamps.
func IdempotencyWindow(d time.Duration) Opt { return func(c *cfg) { c.window = d } }

// MaxRecordBytes sets the largest input value accepted (default 1 MiB);
// larger values go to the DLQ as oversize.
func MaxRecordBytes(n int) Opt { return func(c *cfg) { c.maxBytes = n } }

// MaskPolicy sets the policy for PANs found in DLQ masked copies (default
// first6last4). The PAN field itself is always reduced to its last four.
func MaskPolicy(p pan.Policy) Opt { return func(c *cfg) { c.policy = p } }

// Logger sets the logger (default slog.Default()). Pass a PAN-masking
// handler; the tokenizer never logs record contents anyway.
func Logger(l *slog.Logger) Opt { return func(c *cfg) { c.logger = l } }

// StateClientOpts are the client options (brokers, TLS, SASL) used to read
// the idempotency-state topic when partitions are assigned. Required for
// Processor.
func StateClientOpts(opts ...kgo.Opt) Opt { return func(c *cfg) { c.stateOpts = opts } }

// StateDir is the directory of the worker's idempotency state store
// (Pebble). Keep it across restarts (a persistent volume) so a restart only
// replays the changelog tail; empty means a temporary directory, restored in
// full at every start. One worker per directory.
func StateDir(dir string) Opt { return func(c *cfg) { c.stateDir = dir } }

// StateCacheBytes sets the state store's block cache (default
// state.DefaultCacheBytes): with the memtables it bounds the state's memory,
// whatever the number of keys.
func StateCacheBytes(n int64) Opt { return func(c *cfg) { c.cacheBytes = n } }

// StateFilterBytes bounds the memory of the in-memory key filters that
// answer most lookups of new idempotency keys without reading the store
// (default state.DefaultFilterBytes, about 100 million keys; negative: none).
// A partition whose filter would not fit is read from the store.
func StateFilterBytes(n int64) Opt { return func(c *cfg) { c.filterBytes = n } }

// StateJSONEntries has the tokenizer write its idempotency entries in the
// JSON of releases before the binary format (idemformat.go), which those
// releases can read. For a rolling upgrade from such a release: run every
// worker of the new release with it first, then restart them without it.
// Entries in either format are always read.
func StateJSONEntries(on bool) Opt { return func(c *cfg) { c.jsonEntries = on } }

// StateMetrics sets where state restore metrics go (default none).
func StateMetrics(m *state.Metrics) Opt { return func(c *cfg) { c.stateMetrics = m } }

// Tokenizer is the pure transform of raw payments into output records, with
// its idempotency state. Its Transform is not safe for concurrent use: the
// loop calls it from one goroutine.
type Tokenizer struct {
	cfg   cfg
	kr    *token.Keyring
	vault *token.Vault
	serde *schemas.Serde
	det   *pan.Detector
	red   *redact.Redactor

	store     *state.Store
	tmpDir    string
	tableOnce sync.Once
	table     *state.Table

	required []string // fields a JSON payment must carry (raw_payment.avsc)

	panBuf []byte
	keks   map[uint32]string // kekID per key version, memoised
	stats  Stats
}

// kekID is kekID(t.kr, v), memoised: the keyring's versions are fixed once
// loaded (rotation loads a new keyring).
func (t *Tokenizer) kekID(v uint32) string {
	id, ok := t.keks[v]
	if !ok {
		id = kekID(t.kr, v)
		t.keks[v] = id
	}
	return id
}

// Stats counts what the tokenizer did, for tests and the benchmark.
type Stats struct {
	Tokenized  int64
	Duplicates int64
	DLQ        int64
}

// New returns a Tokenizer that tokenizes under kr's current key version and
// seals PANs with vault.
func New(kr *token.Keyring, vault *token.Vault, serde *schemas.Serde, opts ...Opt) (*Tokenizer, error) {
	c := cfg{
		topics:   config.DefaultTopics(),
		window:   DefaultIdempotencyWindow,
		maxBytes: DefaultMaxRecordBytes,
		policy:   pan.First6Last4,
		logger:   slog.Default(),
	}
	for _, o := range opts {
		o(&c)
	}
	if kr == nil || vault == nil || serde == nil {
		return nil, errors.New("tokenizer: keyring, vault and serde are required")
	}
	if kr.Role() == token.RoleDetokenizer {
		return nil, fmt.Errorf("tokenizer: %w", token.ErrNoTokenKey)
	}
	if err := checkAuditSchema(); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if c.topics.Idempotency == "" {
		return nil, errors.New("tokenizer: no idempotency-state topic configured (--topic-idempotency)")
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	req, err := requiredFields()
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	store, tmp, err := openStore(&c)
	if err != nil {
		return nil, err
	}
	det := pan.New()
	return &Tokenizer{cfg: c, kr: kr, vault: vault, serde: serde, det: det, red: redact.New(det, c.policy),
		store: store, tmpDir: tmp, required: req, panBuf: make([]byte, 0, 32), keks: map[uint32]string{}}, nil
}

// Stats returns the counters so far.
func (t *Tokenizer) Stats() Stats { return t.stats }

// Transform turns one raw payment record into the records to write in the
// same transaction, appended to dst. An error means the record could not be
// handled for a reason outside the record itself (registry unreachable,
// keyring or KMS failure, state not loaded): the transaction must abort and
// be retried. Bad input never errors: it yields a DLQ record.
func (t *Tokenizer) Transform(ctx context.Context, rec *kgo.Record, dst []*kgo.Record) ([]*kgo.Record, error) {
	return t.transform(ctx, rec, rec.Partition, dst)
}

// transform is Transform with the idempotency state read and written in
// state partition statePart (the repartition topic's partition).
func (t *Tokenizer) transform(ctx context.Context, rec *kgo.Record, statePart int32, dst []*kgo.Record) ([]*kgo.Record, error) {
	if len(rec.Value) > t.cfg.maxBytes {
		return t.reject(dst, rec, nil, ReasonOversize, fmt.Sprintf("value is %d bytes, limit %d", len(rec.Value), t.cfg.maxBytes)), nil
	}
	var p schemas.RawPayment
	switch {
	case len(rec.Value) > 0 && rec.Value[0] == '{':
		var err error
		if p, err = schemas.DecodeRawPaymentJSON(rec.Value); err != nil {
			return t.reject(dst, rec, nil, ReasonMalformedJSON, "value starts with '{' but is not a RawPayment JSON document"), nil
		}
		if miss := missingJSONFields(rec.Value, t.required); len(miss) > 0 {
			return t.reject(dst, rec, &p, ReasonMissingField, "required field missing or empty: "+strings.Join(miss, ", ")), nil
		}
	case len(rec.Value) > 0 && rec.Value[0] == 0:
		if err := t.serde.Decode(ctx, rec.Value, &p); err != nil {
			switch {
			case errors.Is(err, schemas.ErrUnknownSchemaID):
				return t.reject(dst, rec, nil, ReasonUnknownSchemaID, "schema id is not in the registry"), nil
			case errors.Is(err, schemas.ErrMalformed), errors.Is(err, schemas.ErrIncompatible):
				return t.reject(dst, rec, nil, ReasonMalformedAvro, "not a RawPayment in the Confluent Avro wire format"), nil
			default:
				// Registry unavailable: retry, do not dead-letter good data.
				return dst, fmt.Errorf("decoding %s[%d]@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
			}
		}
	default:
		return t.reject(dst, rec, nil, ReasonUnknownEncoding, "value is neither Confluent Avro (magic byte 0) nor JSON ('{')"), nil
	}
	return t.transformPayment(ctx, rec, statePart, &p, dst)
}

func (t *Tokenizer) transformPayment(ctx context.Context, rec *kgo.Record, statePart int32, p *schemas.RawPayment, dst []*kgo.Record) ([]*kgo.Record, error) {
	// The PAN is copied once into a reused buffer, cleared on return.
	chk, digits, rej := validatePayment(p, rec, t.panBuf)
	defer clear(t.panBuf[:cap(t.panBuf)])
	if cap(digits) > cap(t.panBuf) {
		t.panBuf = digits[:0]
	}
	if rej != nil {
		return t.reject(dst, rec, p, rej.code, rej.msg), nil
	}
	network, ctxID, parentCtx := chk.Network, chk.ContextID, chk.ParentContextID

	// Idempotency: a key seen within the window yields no second event.
	idemKey := p.IdempotencyKey
	if idemKey == "" {
		idemKey = p.PaymentID
	}
	if idemKey != "" {
		e, dup, err := t.seen(statePart, idemKey, rec.Timestamp.UnixMilli())
		if err != nil {
			return dst, fmt.Errorf("idempotency state of %s[%d]@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
		}
		if dup {
			if e.Offset == rec.Offset && e.Part == rec.Partition {
				// This very input record was tokenized in a committed
				// transaction whose offset commit did not survive (a
				// broker crash between the two), so it came back through
				// the repartition topic a second time: its output and
				// audit event exist already, so the replay emits nothing.
				// A second audit event would not describe a second input.
				return dst, nil
			}
			t.stats.Duplicates++
			ev := t.audit(rec, "dedup", "ok", e.Context, "idempotency key already tokenized at offset "+strconv.FormatInt(e.Offset, 10),
				map[string]string{"payment_id": p.PaymentID, "first_offset": strconv.FormatInt(e.Offset, 10)})
			return t.appendAudit(dst, rec, ev)
		}
	}

	tok, ve, err := sealVaultEntry(ctx, t.kr, t.vault, digits, rec.Timestamp, t.kekID)
	if err != nil {
		return dst, fmt.Errorf("%s[%d]@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
	}
	version := uint32(ve.KeyVersion)
	tp := schemas.TokenizedPayment{
		PaymentID:       p.PaymentID,
		IdempotencyKey:  p.IdempotencyKey,
		EventType:       p.EventType,
		Token:           tok,
		KeyVersion:      int32(version),
		BIN:             binOf(digits),
		Last4:           string(digits[len(digits)-4:]),
		Brand:           network.String(),
		ContextID:       ctxID,
		ParentContextID: parentCtx,
		ParentPaymentID: p.ParentPaymentID,
		AmountMinor:     p.AmountMinor,
		Currency:        p.Currency,
		MerchantID:      p.MerchantID,
		OccurredAt:      p.OccurredAt,
		SourceTopic:     rec.Topic,
		SourcePartition: rec.Partition,
		SourceOffset:    rec.Offset,
	}
	tv, err := t.serde.Encode(&tp)
	if err != nil {
		return dst, fmt.Errorf("encoding tokenized payment: %w", err)
	}
	vv, err := t.serde.Encode(&ve)
	if err != nil {
		return dst, fmt.Errorf("encoding vault entry: %w", err)
	}
	// The two records and their keys in two allocations, not four.
	out := new([2]kgo.Record)
	keys := append(append(make([]byte, 0, len(ctxID)+len(tok)), ctxID...), tok...)
	ts := rec.Timestamp
	out[0] = kgo.Record{Topic: t.cfg.topics.PaymentsTokenized, Key: keys[:len(ctxID):len(ctxID)], Value: tv, Timestamp: ts}
	out[1] = kgo.Record{Topic: t.cfg.topics.Vault, Key: keys[len(ctxID):], Value: vv, Timestamp: ts}
	dst = append(dst, &out[0], &out[1])
	ev := t.audit(rec, "tokenize", "ok", ctxID, "", nil)
	var vbuf [10]byte
	attrs := [...]schemas.AuditAttr{
		{Key: "token", Value: tok}, {Key: "key_version", Value: string(strconv.AppendUint(vbuf[:0], uint64(version), 10))},
		{Key: "event_type", Value: string(p.EventType)}, {Key: "payment_id", Value: p.PaymentID},
	}
	if dst, err = t.appendAuditAttrs(dst, rec, &ev, attrs[:]); err != nil {
		return dst, err
	}
	if idemKey != "" {
		// The entry goes to state partition statePart, set explicitly on
		// the record: the state topic is co-partitioned with the
		// repartition topic, keyed alike.
		dst = append(dst, t.remember(statePart, idemKey, idemEntry{Context: ctxID, TS: rec.Timestamp.UnixMilli(), Offset: rec.Offset, Part: rec.Partition}))
	}
	t.stats.Tokenized++
	return dst, nil
}

// eventTime is the time expiry is judged at: the event's own time, falling
// back to the record timestamp, so replays decide the same way.
func eventTime(p *schemas.RawPayment, rec *kgo.Record) time.Time {
	if p.OccurredAt > 0 {
		return time.UnixMilli(p.OccurredAt).UTC()
	}
	return rec.Timestamp.UTC()
}

// contexts derives the event's context id and its parent's (see context.go).
func contexts(p *schemas.RawPayment, rec *kgo.Record) (string, *string, *rejection) {
	parent := ""
	if p.ParentPaymentID != nil {
		parent = *p.ParentPaymentID
	}
	own := func() string {
		switch {
		case p.PaymentID != "":
			return paymentContext(p.PaymentID)
		case p.IdempotencyKey != "":
			return contextID("idempotency", p.IdempotencyKey)
		default:
			return offsetContext(rec.Topic, rec.Partition, rec.Offset)
		}
	}
	switch p.EventType {
	case schemas.Authorization, "":
		if parent != "" {
			pc := paymentContext(parent)
			return own(), &pc, nil
		}
		return own(), nil, nil
	case schemas.Capture:
		if parent == "" {
			return own(), nil, nil
		}
		pc := paymentContext(parent)
		return pc, &pc, nil
	case schemas.Refund, schemas.Chargeback:
		if parent == "" {
			return "", nil, &rejection{ReasonMissingParent, "refunds and chargebacks need parent_payment_id (the original payment)"}
		}
		pc := paymentContext(parent)
		return pc, &pc, nil
	case schemas.SplitChild:
		if parent == "" {
			return "", nil, &rejection{ReasonMissingParent, "split children need parent_payment_id"}
		}
		if p.PaymentID == "" {
			return "", nil, &rejection{ReasonMissingPaymentID, "split children need their own payment_id"}
		}
		pc := paymentContext(parent)
		return childContext(pc, p.PaymentID), &pc, nil
	default:
		return "", nil, &rejection{ReasonInvalidEventType, "unknown event_type"}
	}
}

// AuditID is the deterministic audit event id of the foundation contract:
// hex(sha256(actor|action|topic|partition|offset))[:32].
func AuditID(actor, action, topic string, partition int32, offset int64) string {
	// Built on the stack for the usual short names: this runs per event.
	var buf [256]byte
	b := append(buf[:0], actor...)
	b = append(b, '|')
	b = append(b, action...)
	b = append(b, '|')
	b = append(b, topic...)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, offset, 10)
	h := sha256.Sum256(b)
	var out [32]byte
	hex.Encode(out[:], h[:16])
	return string(out[:])
}

func (t *Tokenizer) audit(rec *kgo.Record, action, outcome, subject, reason string, attrs map[string]string) schemas.AuditEvent {
	return schemas.AuditEvent{
		ID:        AuditID(Name, action, rec.Topic, rec.Partition, rec.Offset),
		Time:      rec.Timestamp.UnixMilli(),
		Actor:     Name,
		Action:    action,
		Outcome:   outcome,
		Topic:     rec.Topic,
		Partition: rec.Partition,
		Offset:    rec.Offset,
		Subject:   subject,
		Reason:    reason,
		Attrs:     attrs,
	}
}

func (t *Tokenizer) appendAudit(dst []*kgo.Record, rec *kgo.Record, ev schemas.AuditEvent) ([]*kgo.Record, error) {
	b, err := EncodeAudit(t.serde, ev)
	if err != nil {
		return dst, fmt.Errorf("encoding audit event: %w", err)
	}
	return append(dst, &kgo.Record{Topic: t.cfg.topics.AuditEvents, Key: []byte(ev.ID), Value: b, Timestamp: rec.Timestamp}), nil
}

// appendAuditAttrs is appendAudit for an event whose attributes are attrs
// (ev.Attrs empty): the same bytes, without building a map per event.
func (t *Tokenizer) appendAuditAttrs(dst []*kgo.Record, rec *kgo.Record, ev *schemas.AuditEvent, attrs []schemas.AuditAttr) ([]*kgo.Record, error) {
	b, err := t.serde.AppendAudit(nil, ev, attrs)
	if err != nil {
		return dst, fmt.Errorf("encoding audit event: %w", err)
	}
	return append(dst, &kgo.Record{Topic: t.cfg.topics.AuditEvents, Key: []byte(ev.ID), Value: b, Timestamp: rec.Timestamp}), nil
}

// reject appends a DLQ record and its audit event. p is the decoded payment
// when decoding worked (its redacted form becomes the copy), nil otherwise
// (then the raw bytes are kept only as text with every digit starred, or
// withheld when binary: a CVV or a binary-encoded PAN cannot be located in
// bytes that do not decode). The record's headers are not copied.
func (t *Tokenizer) reject(dst []*kgo.Record, rec *kgo.Record, p *schemas.RawPayment, code, msg string) []*kgo.Record {
	t.stats.DLQ++
	d := schemas.DLQRecord{
		Processor:         Name,
		ReasonCode:        code,
		Reason:            msg,
		SourceTopic:       rec.Topic,
		SourcePartition:   rec.Partition,
		SourceOffset:      rec.Offset,
		SourceTimestampMs: rec.Timestamp.UnixMilli(),
	}
	if len(rec.Value) >= 5 && rec.Value[0] == 0 {
		id := int32(binary.BigEndian.Uint32(rec.Value[1:5]))
		d.SchemaID = &id
	}
	d.MaskedKey = t.red.Bytes(rec.Key)
	var copyb []byte
	if p != nil {
		copyb = t.maskedJSON(p)
	} else {
		copyb = t.red.Opaque(rec.Value)
	}
	if len(copyb) > maxMaskedCopy {
		copyb, d.Truncated = copyb[:maxMaskedCopy], true
	}
	if len(d.MaskedKey) > maxMaskedCopy {
		d.MaskedKey, d.Truncated = d.MaskedKey[:maxMaskedCopy], true
	}
	d.MaskedValue = copyb
	coords := rec.Topic + "/" + strconv.FormatInt(int64(rec.Partition), 10) + "/" + strconv.FormatInt(rec.Offset, 10)
	v, err := t.serde.Encode(&d)
	if err != nil {
		// The DLQ schema is ours and registered at start; failing here is a
		// programming error. Keep going with a JSON DLQ value rather than
		// stopping the pipeline on one record.
		v, _ = json.Marshal(&d)
	}
	dst = append(dst, &kgo.Record{Topic: t.cfg.topics.PaymentsDLQ, Key: []byte(coords), Value: v, Timestamp: rec.Timestamp})
	ev := t.audit(rec, "dlq", "rejected", coords, code, map[string]string{"reason": msg})
	out, err := t.appendAudit(dst, rec, ev)
	if err != nil {
		return dst
	}
	return out
}

// maskedPayment is the DLQ copy of a decoded payment: the PAN reduced to its
// last four digits, no CVV field at all, the cardholder name withheld, every
// free-text field and the metadata redacted (internal/redact).
type maskedPayment struct {
	PaymentID       string            `json:"payment_id"`
	IdempotencyKey  string            `json:"idempotency_key"`
	EventType       string            `json:"event_type"`
	ParentPaymentID *string           `json:"parent_payment_id,omitempty"`
	PAN             string            `json:"pan_masked"`
	PANDigits       int               `json:"pan_digits"`
	ExpiryMonth     int32             `json:"expiry_month"`
	ExpiryYear      int32             `json:"expiry_year"`
	CVVPresent      bool              `json:"cvv_present"`
	CardholderName  string            `json:"cardholder_name,omitempty"`
	AmountMinor     int64             `json:"amount_minor"`
	Currency        string            `json:"currency"`
	MerchantID      string            `json:"merchant_id"`
	OccurredAt      int64             `json:"occurred_at"`
	Metadata        map[string]string `json:"metadata,omitempty"`
}

func (t *Tokenizer) maskedJSON(p *schemas.RawPayment) []byte {
	s := t.red.String
	m := maskedPayment{
		PaymentID: s(p.PaymentID), IdempotencyKey: s(p.IdempotencyKey), EventType: s(string(p.EventType)),
		ExpiryMonth: p.ExpiryMonth, ExpiryYear: p.ExpiryYear,
		CVVPresent: p.CVV != nil && *p.CVV != "", AmountMinor: p.AmountMinor, Currency: s(p.Currency),
		MerchantID: s(p.MerchantID), OccurredAt: p.OccurredAt, Metadata: t.red.Map(p.Metadata),
	}
	if p.ParentPaymentID != nil {
		pp := s(*p.ParentPaymentID)
		m.ParentPaymentID = &pp
	}
	m.PAN, m.PANDigits = maskPANField(p.PAN)
	if p.CardholderName != nil && *p.CardholderName != "" {
		m.CardholderName = redact.Withheld
	}
	b, _ := json.Marshal(&m)
	// Belt and braces: whatever the detector still finds is masked too.
	out, _ := t.det.Mask(nil, b, t.cfg.policy)
	return out
}

// maskPANField keeps at most the last four digits of a PAN field, and only
// when the field is a well-formed PAN of 12 to 19 digits (spaces and dashes
// allowed): in anything else the last four digits could be something else (a
// CVV typed into the field). Every other byte is starred.
func maskPANField(s string) (string, int) {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
		}
	}
	keep := 0
	var buf [32]byte
	if n >= 12 && n <= 19 && cleanPAN(buf[:0], s) != nil {
		keep = 4
	}
	b := []byte(s)
	seen := 0
	for i := range b {
		if b[i] >= '0' && b[i] <= '9' {
			seen++
			if seen > n-keep {
				continue
			}
		}
		b[i] = '*'
	}
	return string(b), n
}

// minHiddenForBIN is how many digits must stay hidden for the BIN to be
// shown next to the last four: with fewer, BIN + last four + the Luhn digit
// leave few enough candidates to enumerate the PAN (a 15-digit PAN keeps 5
// hidden digits, 10^4 candidates once Luhn is applied).
const minHiddenForBIN = 6

// binOf returns the first six digits when at least minHiddenForBIN digits
// stay hidden besides them and the last four (PANs of 16 to 19 digits), and
// "" for shorter PANs, whose events carry the last four and brand only.
// TODO(issue-11-detector): use internal/pan's truncation function once it
// lands, so every truncation in pcistream follows one rule.
func binOf(digits []byte) string {
	if len(digits)-6-4 < minHiddenForBIN {
		return ""
	}
	return string(digits[:6])
}
