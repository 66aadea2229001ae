package scan_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/s3x"
	"github.com/pcistream/pcistream/internal/scan"
)

func kafkaTopic(t *testing.T, partitions int32) string {
	t.Helper()
	name := devstacktest.Name(t, "scan")
	devstacktest.CreateTopic(t, stack, name, partitions)
	return name
}

func TestKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := kafkaTopic(t, 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaAddrs...), kgo.TransactionalID("scan-test-"+uniq()), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	var want []string
	pv, pk, ph, pAbort, pLast := visa(t), mc(t), amex(t), visa(t), mc(t)
	produce := func(commit kgo.TransactionEndTry, recs ...*kgo.Record) []*kgo.Record {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		res := cl.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
		return recs
	}
	// Clean records on every partition.
	var clean []*kgo.Record
	for i := 0; i < 30; i++ {
		clean = append(clean, &kgo.Record{Partition: int32(i % 3), Value: []byte(fmt.Sprintf(`{"order":%d,"token":"tok_v1_abcdefghijklmnopqrstuvwxyzabcdef","amount":1234567890123}`, i))})
	}
	produce(kgo.TryCommit, clean...)
	rs := produce(kgo.TryCommit,
		&kgo.Record{Partition: 0, Value: []byte(`{"pan":"` + pv + `"}`)},
		&kgo.Record{Partition: 1, Key: []byte(pk), Value: []byte("clean value")},
		&kgo.Record{Partition: 2, Value: []byte("x"), Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}, {Key: "card", Value: []byte(ph)}}},
	)
	want = append(want,
		fmt.Sprintf("%s/0/%d value|%s", topic, rs[0].Offset, last4(pv)),
		fmt.Sprintf("%s/1/%d key|%s", topic, rs[1].Offset, last4(pk)),
		fmt.Sprintf("%s/2/%d header:card|%s", topic, rs[2].Offset, last4(ph)),
	)
	// Aborted: invisible to read_committed, must not be reported.
	produce(kgo.TryAbort, &kgo.Record{Partition: 0, Value: []byte(pAbort)})
	rs = produce(kgo.TryCommit, &kgo.Record{Partition: 0, Value: []byte("tail " + pLast)})
	want = append(want, fmt.Sprintf("%s/0/%d value|%s", topic, rs[0].Offset, last4(pLast)))
	lastOff := rs[0].Offset

	target := fmt.Sprintf("kafka://%s/%s", strings.Join(stack.KafkaAddrs, ","), topic)
	c, sum, err := scanAll(t, []string{target}, scan.KafkaIdleTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	assertKeys(t, c.keys(), want)
	if sum.Items != 30+3+1 {
		t.Errorf("records scanned = %d, want 34 (committed only)", sum.Items)
	}
	if len(sum.Warnings) > 0 {
		t.Errorf("unexpected warnings: %v", sum.Warnings)
	}

	// Brokers from configuration, offset range on every partition:
	// from=lastOff on partition 0 covers only the tail record.
	c, _, err = scanAll(t, []string{fmt.Sprintf("kafka:///%s?from=%d", topic, lastOff)}, scan.Config(stack.Config()), scan.KafkaIdleTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	assertKeys(t, c.keys(), want[3:4])

	// Time range in the future: nothing.
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	c, sum, err = scanAll(t, []string{target + "?from=" + future}, scan.KafkaIdleTimeout(5*time.Second))
	if err != nil || len(c.fs) != 0 || sum.Items != 0 {
		t.Errorf("future range: err=%v findings=%d items=%d, want nothing", err, len(c.fs), sum.Items)
	}
}

func TestKafkaErrors(t *testing.T) {
	_, _, err := scanAll(t, []string{fmt.Sprintf("kafka://%s/no-such-topic-%s", stack.KafkaAddrs[0], uniq())})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing topic: want 'does not exist', got %v", err)
	}
	_, _, err = scanAll(t, []string{"kafka://127.0.0.1:1/t"}, scan.DialTimeout(2*time.Second))
	if err == nil || !strings.Contains(err.Error(), "cannot reach Kafka") || strings.Contains(err.Error(), "\n") {
		t.Errorf("unreachable broker: want one-line 'cannot reach Kafka', got %v", err)
	}
}

func s3Bucket(t *testing.T) (*s3.Client, string) {
	t.Helper()
	ctx := context.Background()
	cl, err := s3x.NewClient(ctx, stack.S3)
	if err != nil {
		t.Fatal(err)
	}
	bucket := "scan-" + uniq()
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return cl, bucket
}

func put(t *testing.T, cl *s3.Client, bucket, key string, body []byte) {
	t.Helper()
	if _, err := cl.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func TestS3(t *testing.T) {
	cl, bucket := s3Bucket(t)
	p1, p2, p3, p4 := visa(t), mc(t), amex(t), visa(t)
	put(t, cl, bucket, "logs/2026/app.log", []byte("boot\nuser paid "+p1+"\n"))
	put(t, cl, bucket, "logs/2026/app.log.gz", gz(t, []byte("a\nb\nc\n{\"card\":\""+p2+"\"}\n")))
	put(t, cl, bucket, "logs/2026/noext", gz(t, []byte(p3+"\n")))
	put(t, cl, bucket, "logs/clean.jsonl", []byte(`{"token":"tok_v1_abcdefghijklmnopqrstuvwxyzabcdef","order":1234567890123}`+"\n"))
	put(t, cl, bucket, "other/outside.log", []byte(p4+"\n"))

	c, sum, err := scanAll(t, []string{"s3://" + bucket + "/logs/"}, scan.S3(stack.S3))
	if err != nil {
		t.Fatal(err)
	}
	assertKeys(t, c.keys(), []string{
		"s3://" + bucket + "/logs/2026/app.log:2|" + last4(p1),
		"s3://" + bucket + "/logs/2026/app.log.gz:4|" + last4(p2),
		"s3://" + bucket + "/logs/2026/noext:1|" + last4(p3),
	})
	if sum.Items != 4 {
		t.Errorf("objects scanned = %d, want 4", sum.Items)
	}
	for _, f := range c.fs {
		if f.S3 == nil || f.S3.Bucket != bucket || f.S3.Line == 0 {
			t.Errorf("incomplete S3 location: %+v", f.S3)
		}
	}
	// The whole bucket.
	c, _, err = scanAll(t, []string{"s3://" + bucket}, scan.S3(stack.S3))
	if err != nil || len(c.fs) != 4 {
		t.Errorf("whole bucket: err=%v findings=%d, want 4", err, len(c.fs))
	}

	// A corrupt gzip object fails the target, but not before the other
	// objects are scanned and reported.
	p5 := mc(t)
	put(t, cl, bucket, "broken/a.gz", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3})
	put(t, cl, bucket, "broken/b.log", []byte(p5+"\n"))
	c, _, err = scanAll(t, []string{"s3://" + bucket + "/broken/"}, scan.S3(stack.S3))
	if err == nil || !strings.Contains(err.Error(), "1 object(s) could not be read") || !strings.Contains(err.Error(), "broken/a.gz") {
		t.Errorf("corrupt object: want a failed target naming it, got %v", err)
	}
	assertKeys(t, c.keys(), []string{"s3://" + bucket + "/broken/b.log:1|" + last4(p5)})

	// Errors: missing bucket, unreachable endpoint.
	_, _, err = scanAll(t, []string{"s3://no-such-bucket-" + uniq() + "/x"}, scan.S3(stack.S3))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing bucket: want 'does not exist', got %v", err)
	}
	bad := stack.S3
	bad.Endpoint = "http://127.0.0.1:1"
	_, _, err = scanAll(t, []string{"s3://" + bucket}, scan.S3(bad), scan.DialTimeout(3*time.Second))
	if err == nil || !strings.Contains(err.Error(), "cannot reach S3") || strings.Contains(err.Error(), "\n") {
		t.Errorf("unreachable S3: want one-line 'cannot reach S3', got %v", err)
	}
}

// TestKafkaAbortedTail: a partition ending in an aborted transaction is
// finished through its abort marker, without waiting for the idle timeout.
func TestKafkaAbortedTail(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := kafkaTopic(t, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaAddrs...), kgo.TransactionalID("scan-tail-"+uniq()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pOK, pAborted := visa(t), mc(t)
	var okOffset int64
	for _, tc := range []struct {
		p   string
		end kgo.TransactionEndTry
	}{{pOK, kgo.TryCommit}, {pAborted, kgo.TryAbort}} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		r := &kgo.Record{Value: []byte("v " + tc.p)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if tc.end == kgo.TryCommit {
			okOffset = r.Offset
		}
		if err := cl.EndTransaction(ctx, tc.end); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	c, sum, err := scanAll(t, []string{"kafka://" + stack.KafkaAddrs[0] + "/" + topic}, scan.KafkaIdleTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	assertKeys(t, c.keys(), []string{fmt.Sprintf("%s/0/%d value|%s", topic, okOffset, last4(pOK))})
	if len(sum.Warnings) > 0 || time.Since(start) > 15*time.Second {
		t.Errorf("scan should end at the abort marker, took %s, warnings %v", time.Since(start), sum.Warnings)
	}
}

// TestMaskedOutputsScanClean: what the masker writes (every policy) scans
// clean in a topic, an S3 object and a file, while the raw input does not.
func TestMaskedOutputsScanClean(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var raw bytes.Buffer
	for i := 0; i < 50; i++ {
		p := []string{visa(t), mc(t), amex(t)}[i%3]
		fmt.Fprintf(&raw, `{"i":%d,"msg":"charge card %s ok","order":"ord-%d"}`+"\n", i, p, 1000000+i)
	}
	topic := kafkaTopic(t, 2)
	prod, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaAddrs...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	s3c, bucket := s3Bucket(t)
	dir := t.TempDir()
	for _, policy := range []pan.Policy{pan.First6Last4, pan.Last4, pan.Full} {
		masked, n := det.Mask(nil, raw.Bytes(), policy)
		if n != 50 {
			t.Fatalf("masker masked %d of 50", n)
		}
		for _, line := range bytes.Split(bytes.TrimSpace(masked), []byte("\n")) {
			if err := prod.ProduceSync(ctx, &kgo.Record{Key: line[:10], Value: line}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		put(t, s3c, bucket, "sanitized/"+policy.String()+".jsonl.gz", gz(t, masked))
		writeFile(t, filepath.Join(dir, policy.String()+".log"), masked)
	}
	targets := []string{"kafka://" + stack.KafkaAddrs[0] + "/" + topic, "s3://" + bucket + "/sanitized/", dir}
	c, sum, err := scanAll(t, targets, scan.S3(stack.S3))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.fs) != 0 {
		t.Errorf("masked outputs: %d findings, want 0: %v", len(c.fs), c.keys())
	}
	if sum.Items != 150+3+3 {
		t.Errorf("items = %d, want 156 (150 records, 3 objects, 3 files)", sum.Items)
	}
	// Control: the raw input is found.
	writeFile(t, filepath.Join(dir, "raw.log"), raw.Bytes())
	c, _, _ = scanAll(t, []string{dir})
	if len(c.fs) != 50 {
		t.Errorf("raw control: %d findings, want 50", len(c.fs))
	}
}
