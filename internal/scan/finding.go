package scan

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// Kind says what a Finding reports.
type Kind string

// Finding kinds.
const (
	// KindPAN is a Luhn-valid, in-range card number found in data.
	KindPAN Kind = "pan"
	// KindRLSDisabled is a PostgreSQL table that holds PAN-like data or is
	// named like a payment table, with row-level security disabled.
	KindRLSDisabled Kind = "rls-disabled"
)

// KafkaLocation is where in Kafka a PAN was found.
type KafkaLocation struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	// Part is "value", "key" or "header:NAME".
	Part string `json:"part"`
}

// S3Location is where in S3 a PAN was found. Line counts the (decompressed)
// object's lines from 1.
type S3Location struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	Line   int64  `json:"line"`
}

// PostgresLocation is where in PostgreSQL a PAN or a posture issue was found.
// Column and RowID are empty for a table-level (posture) finding.
type PostgresLocation struct {
	Database string `json:"database"`
	Schema   string `json:"schema"`
	Table    string `json:"table"`
	Column   string `json:"column,omitempty"`
	// RowID identifies the row: "id=42" (primary key columns) or
	// "ctid=(0,1)" when the table has no primary key.
	RowID string `json:"row_id,omitempty"`
}

// FileLocation is where in a local file a PAN was found.
type FileLocation struct {
	Path string `json:"path"`
	Line int64  `json:"line"`
}

// Finding is one thing a scan found. It never holds a full PAN: at most the
// network, the number of digits and the last four digits. Every string that
// names a location (keys, paths, primary key values) is masked with the same
// detector before it gets here, so a card number used as a key or a file name
// is not echoed either.
type Finding struct {
	Kind   Kind   `json:"kind"`
	Source Source `json:"source"`
	// Target is the scanned target, password redacted.
	Target string `json:"target"`
	// Location is a one-line human form of where, e.g. "payments.raw/0/42 value",
	// "s3://bucket/key:7", "public.orders.note (id=3)", "logs/app.log:12".
	Location string `json:"location"`

	Kafka    *KafkaLocation    `json:"kafka,omitempty"`
	S3       *S3Location       `json:"s3,omitempty"`
	Postgres *PostgresLocation `json:"postgres,omitempty"`
	File     *FileLocation     `json:"file,omitempty"`

	// Network is the card network ("visa", ...) of a PAN finding.
	Network string `json:"network,omitempty"`
	// Last4 is the last four digits of a PAN finding, the most any output shows.
	Last4 string `json:"last4,omitempty"`
	// Digits is the PAN's length in digits.
	Digits int `json:"digits,omitempty"`
	// Encoding says how the PAN was written when that hid it from a plain
	// digit search ("plain", "json-escape", "percent", "html-entity",
	// "unicode-digits", "separators", "invisible", "glued", "octal-escape",
	// "hex-ascii", "base64", "markup", "quoted-printable", or several
	// joined by '+'; see pan.Encoding), so its owner knows what to fix.
	Encoding string `json:"encoding,omitempty"`
	// Message explains the finding in one line.
	Message string `json:"message"`
	// Fingerprint identifies the finding across runs for baselines: a SHA-256
	// of the kind, the location, the last four digits and an occurrence index,
	// never of the PAN itself.
	Fingerprint string `json:"fingerprint"`
}

// fingerprint derives a stable id from what a finding shows (never from the
// PAN): kind, the stable part of the location, last four digits, and the index
// of this last-4 among matches at the same location (two PANs on one line).
func fingerprint(kind Kind, loc, last4 string, occurrence int) string {
	h := sha256.New()
	for _, s := range []string{"pcistream-scan-v1", string(kind), loc, last4, strconv.Itoa(occurrence)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
