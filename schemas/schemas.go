// Package schemas holds pcistream's Avro schemas (the .avsc files in this
// directory are the source of truth), their Go types, and a serde for the
// Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro
// binary) backed by a schema registry.
package schemas

import (
	"embed"
	"fmt"
	"reflect"

	"github.com/hamba/avro/v2"

	"github.com/pcistream/pcistream/internal/config"
)

//go:embed *.avsc
var files embed.FS

// EventType is the kind of payment event.
type EventType string

// Payment event types.
const (
	Authorization EventType = "AUTHORIZATION"
	Capture       EventType = "CAPTURE"
	Refund        EventType = "REFUND"
	Chargeback    EventType = "CHARGEBACK"
	SplitChild    EventType = "SPLIT_CHILD"
)

// RawPayment is a payment event on payments.raw. It carries cardholder
// data; only the tokenizer reads it.
type RawPayment struct {
	PaymentID       string            `avro:"payment_id" json:"payment_id"`
	IdempotencyKey  string            `avro:"idempotency_key" json:"idempotency_key"`
	EventType       EventType         `avro:"event_type" json:"event_type"`
	ParentPaymentID *string           `avro:"parent_payment_id" json:"parent_payment_id,omitempty"`
	PAN             string            `avro:"pan" json:"pan"`
	ExpiryMonth     int32             `avro:"expiry_month" json:"expiry_month"`
	ExpiryYear      int32             `avro:"expiry_year" json:"expiry_year"`
	CVV             *string           `avro:"cvv" json:"cvv,omitempty"`
	CardholderName  *string           `avro:"cardholder_name" json:"cardholder_name,omitempty"`
	AmountMinor     int64             `avro:"amount_minor" json:"amount_minor"`
	Currency        string            `avro:"currency" json:"currency"`
	MerchantID      string            `avro:"merchant_id" json:"merchant_id"`
	OccurredAt      int64             `avro:"occurred_at" json:"occurred_at"`
	Metadata        map[string]string `avro:"metadata" json:"metadata,omitempty"`
}

// TokenizedPayment is a payment event on payments.tokenized: no PAN, CVV or
// cardholder name.
type TokenizedPayment struct {
	PaymentID       string    `avro:"payment_id" json:"payment_id"`
	IdempotencyKey  string    `avro:"idempotency_key" json:"idempotency_key"`
	EventType       EventType `avro:"event_type" json:"event_type"`
	Token           string    `avro:"token" json:"token"`
	KeyVersion      int32     `avro:"key_version" json:"key_version"`
	BIN             string    `avro:"bin" json:"bin"`
	Last4           string    `avro:"last4" json:"last4"`
	Brand           string    `avro:"brand" json:"brand"`
	ContextID       string    `avro:"context_id" json:"context_id"`
	ParentContextID *string   `avro:"parent_context_id" json:"parent_context_id,omitempty"`
	ParentPaymentID *string   `avro:"parent_payment_id" json:"parent_payment_id,omitempty"`
	AmountMinor     int64     `avro:"amount_minor" json:"amount_minor"`
	Currency        string    `avro:"currency" json:"currency"`
	MerchantID      string    `avro:"merchant_id" json:"merchant_id"`
	OccurredAt      int64     `avro:"occurred_at" json:"occurred_at"`
	SourceTopic     string    `avro:"source_topic" json:"source_topic"`
	SourcePartition int32     `avro:"source_partition" json:"source_partition"`
	SourceOffset    int64     `avro:"source_offset" json:"source_offset"`
}

// VaultEntry is an encrypted PAN on the compacted vault topic, keyed by token.
type VaultEntry struct {
	Token      string `avro:"token" json:"token"`
	KeyVersion int32  `avro:"key_version" json:"key_version"`
	KEKID      string `avro:"kek_id" json:"kek_id"`
	WrappedKey []byte `avro:"wrapped_key" json:"wrapped_key"`
	Nonce      []byte `avro:"nonce" json:"nonce"`
	Ciphertext []byte `avro:"ciphertext" json:"ciphertext"`
	Algorithm  string `avro:"algorithm" json:"algorithm"`
	CreatedAt  int64  `avro:"created_at" json:"created_at"`
}

// AuditEvent says who did what, when, to which record. Never a PAN.
type AuditEvent struct {
	ID        string            `avro:"id" json:"id"`
	Time      int64             `avro:"time_ms" json:"time_ms"`
	Actor     string            `avro:"actor" json:"actor"`
	Action    string            `avro:"action" json:"action"`
	Outcome   string            `avro:"outcome" json:"outcome"`
	Topic     string            `avro:"topic" json:"topic"`
	Partition int32             `avro:"partition" json:"partition"`
	Offset    int64             `avro:"offset" json:"offset"`
	Subject   string            `avro:"subject" json:"subject"`
	Reason    string            `avro:"reason" json:"reason,omitempty"`
	Attrs     map[string]string `avro:"attrs" json:"attrs,omitempty"`
}

// DLQRecord is a record pcistream could not process: a reason and a masked
// copy, never the raw input.
type DLQRecord struct {
	Processor         string `avro:"processor" json:"processor"`
	ReasonCode        string `avro:"reason_code" json:"reason_code"`
	Reason            string `avro:"reason" json:"reason"`
	SourceTopic       string `avro:"source_topic" json:"source_topic"`
	SourcePartition   int32  `avro:"source_partition" json:"source_partition"`
	SourceOffset      int64  `avro:"source_offset" json:"source_offset"`
	SourceTimestampMs int64  `avro:"source_timestamp_ms" json:"source_timestamp_ms"`
	SchemaID          *int32 `avro:"schema_id" json:"schema_id,omitempty"`
	MaskedKey         []byte `avro:"masked_key" json:"masked_key"`
	MaskedValue       []byte `avro:"masked_value" json:"masked_value"`
	Truncated         bool   `avro:"truncated" json:"truncated"`
}

// Def is one schema: its file, its Go type and the subjects it is registered
// under.
type Def struct {
	File   string
	Type   reflect.Type
	Schema avro.Schema
	Text   string
}

var defFiles = []struct {
	file string
	typ  reflect.Type
}{
	{"raw_payment.avsc", reflect.TypeFor[RawPayment]()},
	{"tokenized_payment.avsc", reflect.TypeFor[TokenizedPayment]()},
	{"vault_entry.avsc", reflect.TypeFor[VaultEntry]()},
	{"audit_event.avsc", reflect.TypeFor[AuditEvent]()},
	{"dlq_record.avsc", reflect.TypeFor[DLQRecord]()},
}

// Defs parses the embedded schemas.
func Defs() ([]Def, error) {
	out := make([]Def, 0, len(defFiles))
	for _, d := range defFiles {
		b, err := files.ReadFile(d.file)
		if err != nil {
			return nil, err
		}
		s, err := avro.ParseBytes(b)
		if err != nil {
			return nil, fmt.Errorf("schemas: %s: %w", d.file, err)
		}
		out = append(out, Def{File: d.file, Type: d.typ, Schema: s, Text: s.String()})
	}
	return out, nil
}

// Subject is the registry subject a topic's values are registered under
// (TopicNameStrategy).
func Subject(topic string) string { return topic + "-value" }

// Subjects maps each subject to the schema file registered under it.
func Subjects(t config.Topics) map[string]string {
	return map[string]string{
		Subject(t.PaymentsRaw):       "raw_payment.avsc",
		Subject(t.PaymentsTokenized): "tokenized_payment.avsc",
		Subject(t.Vault):             "vault_entry.avsc",
		Subject(t.AuditEvents):       "audit_event.avsc",
		Subject(t.PaymentsDLQ):       "dlq_record.avsc",
		Subject(t.LogsDLQ):           "dlq_record.avsc",
	}
}
