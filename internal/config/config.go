// Package config holds pcistream's shared configuration and resolves it from
// command-line flags, PCISTREAM_* environment variables and a YAML file.
//
// Precedence, highest first: a flag set on the command line, the environment
// variable PCISTREAM_<FLAG_NAME> (upper case, dashes as underscores), the key
// <flag-name> in the config file, the built-in default. Every flag of every
// command takes part, so a new flag needs no extra wiring to be configurable.
package config

import (
	"time"
)

// Config is the configuration shared by every pcistream command.
type Config struct {
	Kafka    Kafka
	Registry Registry
	S3       S3
	Topics   Topics

	// MetricsAddr is where /metrics, /healthz and /readyz are served; empty
	// disables the server.
	MetricsAddr string
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// LogFormat is text or json.
	LogFormat string
	// Keyring is the path of the token keyring file.
	Keyring string
}

// Kafka says how to reach the Kafka cluster.
type Kafka struct {
	Brokers  []string
	ClientID string
	TLS      TLS
	SASL     SASL
	// DialTimeout bounds each broker connection attempt.
	DialTimeout time.Duration
}

// TLS configures TLS to Kafka.
type TLS struct {
	Enabled            bool
	CAFile             string
	CertFile           string
	KeyFile            string
	ServerName         string
	InsecureSkipVerify bool
}

// SASL configures SASL authentication to Kafka.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty disables SASL.
	Mechanism string
	Username  string
	Password  string
}

// Registry says how to reach the Confluent-compatible schema registry.
type Registry struct {
	URL      string
	Username string
	Password string
}

// S3 says how to reach the object store holding the audit trail.
type S3 struct {
	Endpoint  string
	Region    string
	Bucket    string
	AccessKey string
	SecretKey string
	// PathStyle addresses buckets as endpoint/bucket rather than
	// bucket.endpoint; MinIO and versitygw want it.
	PathStyle bool
	// CAFile, when set, is trusted for the endpoint's TLS certificate.
	CAFile string
}

// Topics names every topic pcistream reads or writes.
type Topics struct {
	PaymentsRaw       string
	PaymentsTokenized string
	PaymentsDLQ       string
	LogsRaw           string
	LogsSanitized     string
	LogsDLQ           string
	AuditEvents       string
	Vault             string
	// Idempotency is the tokenizer's compacted dedup-state topic,
	// co-partitioned with PaymentsRaw.
	Idempotency string
	// TokenizerRepartition is the tokenizer's repartition topic: raw
	// payments re-keyed by idempotency key, co-partitioned with
	// Idempotency. It holds PANs (same controls as PaymentsRaw). Empty
	// means Idempotency + ".repartition" (see RepartitionTopic).
	TokenizerRepartition string
	// GatewayIdempotency is the HTTP gateway's compacted Idempotency-Key
	// state topic (request fingerprint and first response per key).
	GatewayIdempotency string
	// AuditCheckpoints is the compacted topic that anchors the audit
	// trail's signed checkpoints outside the S3 bucket.
	AuditCheckpoints string
}

// RepartitionTopic is the tokenizer's repartition topic name.
func (t Topics) RepartitionTopic() string {
	if t.TokenizerRepartition != "" {
		return t.TokenizerRepartition
	}
	return t.Idempotency + ".repartition"
}

// WithSuffix returns the topic names with suffix appended to each, so tests
// and benchmarks get their own topics on a shared cluster.
func (t Topics) WithSuffix(suffix string) Topics {
	return Topics{
		PaymentsRaw: t.PaymentsRaw + suffix, PaymentsTokenized: t.PaymentsTokenized + suffix, PaymentsDLQ: t.PaymentsDLQ + suffix,
		LogsRaw: t.LogsRaw + suffix, LogsSanitized: t.LogsSanitized + suffix, LogsDLQ: t.LogsDLQ + suffix,
		AuditEvents: t.AuditEvents + suffix, Vault: t.Vault + suffix, Idempotency: t.Idempotency + suffix,
	}
}

// Defaults of the embedded development stack (pcistream dev).
const (
	DefaultKafkaAddr    = "127.0.0.1:9092"
	DefaultRegistryURL  = "http://127.0.0.1:8081"
	DefaultS3Endpoint   = "http://127.0.0.1:7070"
	DefaultS3AccessKey  = "pcistream"
	DefaultS3SecretKey  = "pcistream-secret"
	DefaultS3Region     = "us-east-1"
	DefaultS3Bucket     = "pcistream-audit"
	DefaultMetricsAddr  = "127.0.0.1:9464"
	DefaultKeyringPath  = "pcistream-keyring.json"
	DefaultClientID     = "pcistream"
	DefaultDialTimeout  = 10 * time.Second
	DefaultLogLevel     = "info"
	DefaultLogFormat    = "text"
	EnvPrefix           = "PCISTREAM_"
	ConfigFileFlag      = "config"
	DefaultConfigEnvVar = EnvPrefix + "CONFIG"
)

// DefaultTopics returns the default topic names.
func DefaultTopics() Topics {
	return Topics{
		PaymentsRaw:        "payments.raw",
		PaymentsTokenized:  "payments.tokenized",
		PaymentsDLQ:        "payments.dlq",
		LogsRaw:            "logs.raw",
		LogsSanitized:      "logs.sanitized",
		LogsDLQ:            "logs.dlq",
		AuditEvents:        "audit.events",
		Vault:              "pci.vault",
		Idempotency:        "pcistream.tokenizer.idempotency",
		AuditCheckpoints:   "audit.checkpoints",
		GatewayIdempotency: "pcistream.gateway.idempotency",
		// TokenizerRepartition empty: derived from Idempotency.
	}
}

// Default returns a configuration that works against the embedded stack
// served by `pcistream dev`.
func Default() Config {
	return Config{
		Kafka: Kafka{
			Brokers:     []string{DefaultKafkaAddr},
			ClientID:    DefaultClientID,
			DialTimeout: DefaultDialTimeout,
		},
		Registry: Registry{URL: DefaultRegistryURL},
		S3: S3{
			Endpoint:  DefaultS3Endpoint,
			Region:    DefaultS3Region,
			Bucket:    DefaultS3Bucket,
			AccessKey: DefaultS3AccessKey,
			SecretKey: DefaultS3SecretKey,
			PathStyle: true,
		},
		Topics:      DefaultTopics(),
		MetricsAddr: DefaultMetricsAddr,
		LogLevel:    DefaultLogLevel,
		LogFormat:   DefaultLogFormat,
		Keyring:     DefaultKeyringPath,
	}
}
