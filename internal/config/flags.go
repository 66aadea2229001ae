package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// BindFlags registers the shared flags on fs, writing into c. Call it on the
// root command's persistent flag set with c holding Default().
func BindFlags(fs *pflag.FlagSet, c *Config) {
	defer groupFlags(fs)
	fs.String(ConfigFileFlag, "", "YAML config file: a map of flag names to values (env "+DefaultConfigEnvVar+")")

	fs.StringSliceVar(&c.Kafka.Brokers, "brokers", c.Kafka.Brokers, "Kafka seed brokers, comma separated")
	fs.StringVar(&c.Kafka.ClientID, "client-id", c.Kafka.ClientID, "Kafka client id")
	fs.DurationVar(&c.Kafka.DialTimeout, "kafka-dial-timeout", c.Kafka.DialTimeout, "timeout for each broker connection attempt")
	fs.BoolVar(&c.Kafka.TLS.Enabled, "kafka-tls", c.Kafka.TLS.Enabled, "use TLS to Kafka")
	fs.StringVar(&c.Kafka.TLS.CAFile, "kafka-tls-ca", c.Kafka.TLS.CAFile, "PEM CA bundle trusted for Kafka (implies --kafka-tls)")
	fs.StringVar(&c.Kafka.TLS.CertFile, "kafka-tls-cert", c.Kafka.TLS.CertFile, "PEM client certificate for mutual TLS (implies --kafka-tls)")
	fs.StringVar(&c.Kafka.TLS.KeyFile, "kafka-tls-key", c.Kafka.TLS.KeyFile, "PEM client key for mutual TLS")
	fs.StringVar(&c.Kafka.TLS.ServerName, "kafka-tls-server-name", c.Kafka.TLS.ServerName, "TLS server name to verify, when it differs from the broker host")
	fs.BoolVar(&c.Kafka.TLS.InsecureSkipVerify, "kafka-tls-insecure", c.Kafka.TLS.InsecureSkipVerify, "skip TLS certificate verification (testing only)")
	fs.StringVar(&c.Kafka.SASL.Mechanism, "kafka-sasl-mechanism", c.Kafka.SASL.Mechanism, "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	fs.StringVar(&c.Kafka.SASL.Username, "kafka-sasl-username", c.Kafka.SASL.Username, "SASL username")
	fs.StringVar(&c.Kafka.SASL.Password, "kafka-sasl-password", c.Kafka.SASL.Password, "SASL password (prefer the env var PCISTREAM_KAFKA_SASL_PASSWORD)")

	fs.StringVar(&c.Registry.URL, "registry-url", c.Registry.URL, "schema registry URL")
	fs.StringVar(&c.Registry.Username, "registry-username", c.Registry.Username, "schema registry basic-auth user")
	fs.StringVar(&c.Registry.Password, "registry-password", c.Registry.Password, "schema registry basic-auth password")

	fs.StringVar(&c.S3.Endpoint, "s3-endpoint", c.S3.Endpoint, "S3 endpoint URL (empty for AWS)")
	fs.StringVar(&c.S3.Region, "s3-region", c.S3.Region, "S3 region")
	fs.StringVar(&c.S3.Bucket, "s3-bucket", c.S3.Bucket, "audit bucket (must have Object Lock enabled)")
	fs.StringVar(&c.S3.AccessKey, "s3-access-key", c.S3.AccessKey, "S3 access key id (empty: the AWS default credential chain)")
	fs.StringVar(&c.S3.SecretKey, "s3-secret-key", c.S3.SecretKey, "S3 secret access key (prefer the env var PCISTREAM_S3_SECRET_KEY)")
	fs.BoolVar(&c.S3.PathStyle, "s3-path-style", c.S3.PathStyle, "path-style bucket addressing (MinIO, versitygw)")
	fs.StringVar(&c.S3.CAFile, "s3-ca", c.S3.CAFile, "PEM CA bundle trusted for the S3 endpoint")

	fs.StringVar(&c.Topics.PaymentsRaw, "topic-payments-raw", c.Topics.PaymentsRaw, "raw payments topic")
	fs.StringVar(&c.Topics.PaymentsTokenized, "topic-payments-tokenized", c.Topics.PaymentsTokenized, "tokenized payments topic")
	fs.StringVar(&c.Topics.PaymentsDLQ, "topic-payments-dlq", c.Topics.PaymentsDLQ, "payments dead-letter topic")
	fs.StringVar(&c.Topics.LogsRaw, "topic-logs-raw", c.Topics.LogsRaw, "raw logs topic")
	fs.StringVar(&c.Topics.LogsSanitized, "topic-logs-sanitized", c.Topics.LogsSanitized, "sanitized logs topic")
	fs.StringVar(&c.Topics.LogsDLQ, "topic-logs-dlq", c.Topics.LogsDLQ, "logs dead-letter topic")
	fs.StringVar(&c.Topics.AuditEvents, "topic-audit-events", c.Topics.AuditEvents, "audit events topic")
	fs.StringVar(&c.Topics.Vault, "topic-vault", c.Topics.Vault, "compacted vault topic (encrypted PANs)")
	fs.StringVar(&c.Topics.Idempotency, "topic-idempotency", c.Topics.Idempotency, "compacted tokenizer idempotency-state topic")
	fs.StringVar(&c.Topics.TokenizerRepartition, "topic-tokenizer-repartition", c.Topics.TokenizerRepartition, "tokenizer repartition topic (raw payments keyed by idempotency key; holds PANs) (default <topic-idempotency>.repartition)")
	fs.StringVar(&c.Topics.GatewayIdempotency, "topic-gateway-idempotency", c.Topics.GatewayIdempotency, "compacted HTTP gateway Idempotency-Key state topic")
	fs.StringVar(&c.Topics.AuditCheckpoints, "topic-audit-checkpoints", c.Topics.AuditCheckpoints, "compacted topic anchoring the audit trail's signed checkpoints outside S3")

	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "address for /metrics, /healthz and /readyz (empty disables)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.StringVar(&c.Keyring, "keyring", c.Keyring, "token keyring file")
}

// EnvName returns the environment variable that configures the flag name.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Resolve fills every flag of fs not set on the command line from the
// environment and then from the config file. lookupEnv is os.LookupEnv in
// production; tests pass their own.
func Resolve(fs *pflag.FlagSet, lookupEnv func(string) (string, bool)) error {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	var errs []error
	set := func(f *pflag.Flag, v, from string) {
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: --%s: %w", from, f.Name, err))
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		if v, ok := lookupEnv(EnvName(f.Name)); ok {
			set(f, v, EnvName(f.Name))
		}
	})
	path := ""
	if f := fs.Lookup(ConfigFileFlag); f != nil {
		path = f.Value.String()
	}
	if path == "" {
		return errors.Join(errs...)
	}
	values, err := readFile(path)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for name, v := range values {
		f := fs.Lookup(name)
		if f == nil {
			// Unknown keys may belong to another command sharing the
			// file; only a key no command knows is a mistake, which
			// this flag set cannot tell. Ignore.
			continue
		}
		if f.Changed {
			continue
		}
		set(f, v, path)
	}
	return errors.Join(errs...)
}

// readFile reads a flat YAML map of flag names to values. Lists become
// comma-separated strings, as a repeated or slice flag expects.
func readFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("config file %s: not a YAML map of flag names to values: %w", path, err)
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			out[k] = strings.Join(parts, ",")
		case map[string]any:
			return nil, fmt.Errorf("config file %s: key %q: nested maps are not supported; use flag names as keys (e.g. s3-endpoint: ...)", path, k)
		case nil:
			out[k] = ""
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	return out, nil
}
