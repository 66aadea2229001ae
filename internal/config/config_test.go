package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/spf13/pflag"

	"github.com/pcistream/pcistream/internal/config"
)

func TestResolvePrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pcistream.yaml")
	if err := os.WriteFile(file, []byte(`
brokers: [file-1:9092, file-2:9092]
s3-bucket: from-file
s3-region: file-region
log-level: debug
unknown-key: ignored
`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	config.BindFlags(fs, &c)
	if err := fs.Parse([]string{"--config", file, "--s3-bucket", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PCISTREAM_S3_REGION": "env-region", "PCISTREAM_S3_BUCKET": "from-env"}
	if err := config.Resolve(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.S3.Bucket != "from-flag" {
		t.Errorf("bucket %q: a flag must win over env and file", c.S3.Bucket)
	}
	if c.S3.Region != "env-region" {
		t.Errorf("region %q: env must win over the file", c.S3.Region)
	}
	if !reflect.DeepEqual(c.Kafka.Brokers, []string{"file-1:9092", "file-2:9092"}) {
		t.Errorf("brokers %v: the file's list must apply", c.Kafka.Brokers)
	}
	if c.LogLevel != "debug" {
		t.Errorf("log level %q from the file", c.LogLevel)
	}
	if c.S3.Endpoint != config.DefaultS3Endpoint {
		t.Errorf("endpoint %q: the default must remain", c.S3.Endpoint)
	}
}

func TestResolveErrors(t *testing.T) {
	c := config.Default()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	config.BindFlags(fs, &c)
	env := map[string]string{"PCISTREAM_KAFKA_TLS": "maybe"}
	err := config.Resolve(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err == nil {
		t.Fatal("a bad boolean in the environment was accepted")
	}
	fs2 := pflag.NewFlagSet("t", pflag.ContinueOnError)
	config.BindFlags(fs2, &c)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("s3:\n  endpoint: x\n"), 0o600) //nolint:errcheck
	fs2.Parse([]string{"--config", bad})                     //nolint:errcheck
	if err := config.Resolve(fs2, func(string) (string, bool) { return "", false }); err == nil {
		t.Fatal("a nested config file was accepted; keys must be flag names")
	}
}

func TestEnvName(t *testing.T) {
	if got := config.EnvName("topic-payments-raw"); got != "PCISTREAM_TOPIC_PAYMENTS_RAW" {
		t.Fatal(got)
	}
}
