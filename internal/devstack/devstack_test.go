package devstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/s3x"
)

var (
	stack      *devstack.Stack
	scriptPath string // absolute: the S3 gateway changes the working directory
)

func TestMain(m *testing.M) {
	if p, err := filepath.Abs("testdata/interop.py"); err == nil {
		scriptPath = p
	}
	os.Exit(devstacktest.Main(m, &stack, devstacktest.Child(txnCrashChildEnv, txnCrashChild)))
}

// newTopic creates a topic named for base and the test.
func newTopic(t *testing.T, base string, partitions int32) string {
	t.Helper()
	name := devstacktest.Name(t, base)
	devstacktest.CreateTopic(t, stack, name, partitions)
	return name
}

// TestTransactionalRoundTrip produces in a committed and an aborted
// transaction and checks a read_committed consumer sees only the committed
// records.
func TestTransactionalRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := newTopic(t, "rt", 1)
	p, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaAddrs...), kgo.TransactionalID(topic+"-producer"), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i, commit := range []kgo.TransactionEndTry{kgo.TryCommit, kgo.TryAbort, kgo.TryCommit} {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		v := []byte{'a' + byte(i)}
		if err := p.ProduceSync(ctx, &kgo.Record{Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := p.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, r := range devstacktest.ReadStable(t, stack, topic) {
		got = append(got, string(r.Value))
	}
	if strings.Join(got, ",") != "a,c" {
		t.Fatalf("read_committed saw %q, want a,c (b was aborted)", got)
	}
}

// TestRegistryEnforcesBackwardCompat registers a schema, then an evolution
// that adds a field with a default (compatible) and one that adds a field
// without a default (incompatible under BACKWARD).
func TestRegistryEnforcesBackwardCompat(t *testing.T) {
	ctx := context.Background()
	cl, err := sr.NewClient(sr.URLs(stack.RegistryURL))
	if err != nil {
		t.Fatal(err)
	}
	subject := "compat-test-value"
	v1 := `{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}`
	v2 := `{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}`
	bad := `{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0},{"name":"c","type":"int"}]}`
	for _, s := range []string{v1, v2} {
		if _, err := cl.CreateSchema(ctx, subject, sr.Schema{Schema: s, Type: sr.TypeAvro}); err != nil {
			t.Fatalf("compatible schema rejected: %v", err)
		}
	}
	_, err = cl.CreateSchema(ctx, subject, sr.Schema{Schema: bad, Type: sr.TypeAvro})
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.ErrorCode != 409 {
		t.Fatalf("incompatible schema: got %v, want error code 409", err)
	}
	// The compatibility endpoint agrees.
	body, _ := json.Marshal(map[string]string{"schema": bad})
	resp, err := http.Post(stack.RegistryURL+"/compatibility/subjects/"+subject+"/versions/latest", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		IsCompatible bool `json:"is_compatible"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.IsCompatible {
		t.Fatalf("compatibility endpoint: %+v %v, want is_compatible=false", out, err)
	}
}

// TestS3ObjectLock checks the gateway enforces COMPLIANCE retention and
// conditional puts, the two properties the audit trail relies on.
func TestS3ObjectLock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := s3x.NewClient(ctx, stack.S3)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := cl.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(stack.S3.Bucket)})
	if err != nil || lock.ObjectLockConfiguration == nil || lock.ObjectLockConfiguration.ObjectLockEnabled != s3types.ObjectLockEnabledEnabled {
		t.Fatalf("bucket has no object lock: %v", err)
	}
	key := "locktest/obj"
	put, err := cl.PutObject(ctx, &s3.PutObjectInput{
		Bucket:                    aws.String(stack.S3.Bucket),
		Key:                       aws.String(key),
		Body:                      strings.NewReader("hello"),
		ObjectLockMode:            s3types.ObjectLockModeCompliance,
		ObjectLockRetainUntilDate: aws.Time(time.Now().Add(24 * time.Hour)),
		ChecksumAlgorithm:         s3types.ChecksumAlgorithmSha256,
		IfNoneMatch:               aws.String("*"),
	})
	if err != nil {
		t.Fatalf("locked put: %v", err)
	}
	_, err = cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(stack.S3.Bucket), Key: aws.String(key), VersionId: put.VersionId})
	if err == nil {
		t.Fatal("deleting a COMPLIANCE-locked version succeeded")
	}
	_, err = cl.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(stack.S3.Bucket), Key: aws.String(key), Body: strings.NewReader("again"),
		IfNoneMatch: aws.String("*"),
	})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "PreconditionFailed" {
		t.Fatalf("conditional put over an existing key: got %v, want PreconditionFailed", err)
	}
}

// TestKcatInterop drives the third-party client kcat against the broker.
func TestKcatInterop(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not installed (apt-get install kcat); .ci/run installs it")
	}
	topic := newTopic(t, "kcat", 1)
	broker := stack.KafkaAddrs[0]
	prod := exec.Command(kcat, "-b", broker, "-t", topic, "-P", "-K:")
	prod.Stdin = strings.NewReader("k1:v1\nk2:v2\n")
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v: %s", err, out)
	}
	cons := exec.Command(kcat, "-b", broker, "-t", topic, "-C", "-e", "-o", "beginning", "-f", "%k=%s\n", "-X", "isolation.level=read_committed")
	out, err := cons.CombinedOutput()
	if err != nil {
		t.Fatalf("kcat consume: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); !strings.Contains(got, "k1=v1\nk2=v2") {
		t.Fatalf("kcat consumed %q", got)
	}
	// And a record kcat produced is visible to franz-go.
	if n := len(devstacktest.ReadStable(t, stack, topic)); n != 2 {
		t.Fatalf("franz-go saw %d of kcat's records", n)
	}
}

// TestLibrdkafkaTransactionsInterop drives librdkafka (python3-confluent-kafka)
// through a committed and an aborted transaction and a read_committed
// consumer group against the broker.
func TestLibrdkafkaTransactionsInterop(t *testing.T) {
	py := ""
	for _, cand := range []string{"/usr/bin/python3", "python3"} {
		if p, err := exec.LookPath(cand); err == nil && exec.Command(p, "-c", "import confluent_kafka").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		t.Skip("python3-confluent-kafka not installed (apt-get install python3-confluent-kafka); .ci/run installs it")
	}
	topic := newTopic(t, "pyinterop", 1)
	out, err := exec.Command(py, scriptPath, stack.KafkaAddrs[0], topic).CombinedOutput()
	if err != nil {
		t.Fatalf("librdkafka interop: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "one\ntwo\nthree" {
		t.Fatalf("librdkafka read_committed saw %q, want one, two, three (and not the aborted record)", got)
	}
}

// TestRestartKeepsState restarts a Kafka-and-registry stack on the same data
// directory: topics, records and schema ids survive.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := devstack.Start(ctx, devstack.WithoutS3(), devstack.DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Setup(ctx, nil); err != nil {
		t.Fatal(err)
	}
	cl, _ := sr.NewClient(sr.URLs(a.RegistryURL))
	before, err := cl.AllSchemas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := kgo.NewClient(kgo.SeedBrokers(a.KafkaAddrs...), kgo.DefaultProduceTopic("logs.raw"))
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("kept")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	a.Close()

	b, err := devstack.Start(ctx, devstack.WithoutS3(), devstack.DataDir(dir))
	if err != nil {
		t.Fatalf("restart on the same data dir: %v", err)
	}
	defer b.Close()
	if err := b.Setup(ctx, nil); err != nil {
		t.Fatalf("setup after restart (must be idempotent): %v", err)
	}
	cl, _ = sr.NewClient(sr.URLs(b.RegistryURL))
	after, err := cl.AllSchemas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) == 0 || len(before) != len(after) {
		t.Fatalf("schemas before %d, after restart %d", len(before), len(after))
	}
	for i := range before {
		if before[i].Subject != after[i].Subject || before[i].ID != after[i].ID {
			t.Fatalf("schema %s id %d came back as %s id %d", before[i].Subject, before[i].ID, after[i].Subject, after[i].ID)
		}
	}
	if n := len(devstacktest.ReadStable(t, b, "logs.raw")); n != 1 {
		t.Fatalf("records after restart: %d, want 1", n)
	}
}
