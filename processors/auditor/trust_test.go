package auditor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/anchor"
	"github.com/pcistream/pcistream/internal/auditstore"
	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/internal/miniotest"
	"github.com/pcistream/pcistream/internal/s3x"
	"github.com/pcistream/pcistream/processors/auditor"
)

// The insider of these tests holds the auditor's S3 write permission, but
// neither its signing key nor write access to the anchor topic.

// runOnce starts an auditor with extra options and returns a stop function
// and a channel with Run's result.
func runOnce(t *testing.T, e *env, reg prometheus.Registerer, extra ...auditor.Opt) (chan error, context.CancelFunc) {
	t.Helper()
	opts := append([]auditor.Opt{
		auditor.Topic(e.topic), auditor.Group(e.group),
		auditor.ClientOpts(kgo.SeedBrokers(stack.KafkaAddrs...)),
		auditor.BatchLimits(7, 1<<20, 150*time.Millisecond),
		auditor.Checkpoints(e.signer, 300*time.Millisecond),
		auditor.Backoff(20*time.Millisecond, 200*time.Millisecond),
		auditor.AlarmHold(0),
		auditor.Registerer(reg),
	}, extra...)
	a, err := auditor.New(e.store, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(cancel)
	return done, cancel
}

// archiveAll runs the auditor until n records are chained, then stops it.
func archiveAll(t *testing.T, e *env, n int, extra ...auditor.Opt) {
	t.Helper()
	done, cancel := runOnce(t, e, nil, extra...)
	waitFor(t, "records archived", 30*time.Second, func() bool { return countRecords(t, e) == n })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("auditor: %v", err)
	}
}

// wantAlarm restarts the auditor and expects it to stop with a tamper alarm.
func wantAlarm(t *testing.T, e *env, extra ...auditor.Opt) {
	t.Helper()
	reg := prometheus.NewRegistry()
	done, cancel := runOnce(t, e, reg, extra...)
	defer cancel()
	select {
	case err := <-done:
		if !errors.Is(err, chain.ErrTampered) {
			t.Fatalf("auditor stopped with %v, want a tamper alarm", err)
		}
		t.Logf("alarm: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("auditor kept running over a tampered trail")
	}
	if got := metricValue(t, reg, "pcistream_audit_tamper_alarms_total"); got != 1 {
		t.Errorf("tamper alarm metric %v, want 1", got)
	}
}

// archivedHead archives 30 records, produces 30 more, and returns the env,
// a partition with a chain and its head.
func archivedHead(t *testing.T, name string) (*env, int32, *chain.Manifest) {
	t.Helper()
	e := newEnv(t, name)
	produce(t, e.topic, 0, 30)
	archiveAll(t, e, 30)
	produce(t, e.topic, 30, 30)
	p, h := headPartition(t, e)
	return e, p, h
}

// headPartition returns a partition with a chain and its head.
func headPartition(t *testing.T, e *env) (int32, *chain.Manifest) {
	t.Helper()
	for p := int32(0); p < 3; p++ {
		w, err := chain.OpenPartition(context.Background(), e.store, e.topic, p)
		if err != nil {
			t.Fatal(err)
		}
		if h := w.Head(); h != nil {
			return p, h
		}
	}
	t.Fatal("no chain")
	return 0, nil
}

// appendNext appends a batch for the five offsets after partition p's head,
// with correct links, Merkle root and tree, signed by sg.
func appendNext(t *testing.T, e *env, p int32, h *chain.Manifest, sg chain.Signer) {
	t.Helper()
	ctx := context.Background()
	w, err := chain.OpenPartition(ctx, e.store, e.topic, p, chain.WriterSigner(sg), chain.WriterTrust(e.signer.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(ctx, forged(e, p, h)); err != nil {
		t.Fatal(err)
	}
}

// forged returns five records for the offsets after partition p's head
// that are not what Kafka holds there.
func forged(e *env, p int32, h *chain.Manifest) []chain.Record {
	var recs []chain.Record
	for o := h.LastOffset + 1; o <= h.LastOffset+5; o++ {
		recs = append(recs, chain.Record{Topic: e.topic, Partition: p, Offset: o, KafkaTimeMs: 1, TimeMs: 1, Event: json.RawMessage(`{"id":"forged"}`)})
	}
	return recs
}

func TestForgedHeadStopsTheAuditor(t *testing.T) {
	forgedHead(t, newEnv(t, "forgedhead"))
}

// TestMinIO runs the auditor on MinIO, a second S3 implementation: it
// archives unchanged, and refuses a forged head there too.
func TestMinIO(t *testing.T) {
	s3cfg, why := miniotest.Start(t)
	if why != "" {
		t.Skip("MinIO: " + why)
	}
	ctx := context.Background()
	e := newEnv(t, "onminio")
	cl, err := s3x.NewClient(ctx, s3cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(e.bucket), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	e.store = auditstore.New(cl, e.bucket, auditstore.Retention(time.Hour))
	forgedHead(t, e)
}

func forgedHead(t *testing.T, e *env) {
	produce(t, e.topic, 0, 30)
	archiveAll(t, e, 30)
	assertExactlyOnce(t, e, 30)
	produce(t, e.topic, 30, 30) // the real events the forgery would skip
	p, h := headPartition(t, e)
	key, _ := chain.GenerateKey()
	priv, _ := chain.ParsePrivateKey(key)
	appendNext(t, e, p, h, chain.NewSigner(priv))

	wantAlarm(t, e)
	// Nothing was archived or signed over the forged head.
	w, _ := chain.OpenPartition(context.Background(), e.store, e.topic, p)
	if got := w.Head().Sequence; got != h.Sequence+1 {
		t.Fatalf("chain of partition %d moved on to sequence %d over the forged head %d", p, got, h.Sequence+1)
	}
	rep, err := chain.Verify(context.Background(), e.store, chain.TrustedKey(e.signer.Public()))
	if err != nil {
		t.Fatal(err)
	}
	for _, hd := range rep.LatestCheckpoint.Heads {
		if hd.Partition == p && hd.Sequence > h.Sequence {
			t.Fatalf("checkpoint %d signed the forged head", rep.LatestCheckpoint.Sequence)
		}
	}
	if rep.OK() {
		t.Fatal("verify accepts the forged head")
	}
}

// TestHeadDisagreeingWithKafkaStopsTheAuditor appends a head signed with the
// auditor's own key (a stolen key, or a bug) whose records are not what
// Kafka holds at those offsets: the cross-check on resume refuses it.
func TestHeadDisagreeingWithKafkaStopsTheAuditor(t *testing.T) {
	e, p, h := archivedHead(t, "headvskafka")
	appendNext(t, e, p, h, e.signer)
	wantAlarm(t, e)
}

// TestPlantedOrphanObjectStopsTheAuditor plants a batch object without
// manifest after the head, reaching far beyond a full batch: the auditor
// must neither wait for it forever nor adopt it.
func TestPlantedOrphanObjectStopsTheAuditor(t *testing.T) {
	e, p, h := archivedHead(t, "orphan")
	if _, err := e.store.PutIfAbsent(context.Background(), chain.ObjectKey(p, h.LastOffset+1, h.LastOffset+1_000_000), []byte("planted")); err != nil {
		t.Fatal(err)
	}
	wantAlarm(t, e)
}

// TestForgedOrphanObjectStopsTheAuditor plants a well-formed batch object
// without manifest after the head, five records long, whose records are not
// what Kafka holds: no batch limit gives it away, its records do.
func TestForgedOrphanObjectStopsTheAuditor(t *testing.T) {
	e, p, h := archivedHead(t, "forgedorphan")
	b, err := chain.EncodeBatch(forged(e, p, h))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.PutIfAbsent(context.Background(), b.Key(), b.Object); err != nil {
		t.Fatal(err)
	}
	wantAlarm(t, e)
}

// TestOrphanFromWiderBatchesIsAdopted leaves batch objects without manifest
// cut by a writer with larger batches than the next one (a second deployment,
// or a zombie, with other limits): the next writer authenticates them
// against Kafka and adopts them, however long they are.
func TestOrphanFromWiderBatchesIsAdopted(t *testing.T) {
	e := newEnv(t, "widerorphan")
	produce(t, e.topic, 0, 45)
	a, err := auditor.New(&noManifests{Store: e.store}, auditor.Topic(e.topic), auditor.Group(e.group+"-wide"),
		auditor.ClientOpts(kgo.SeedBrokers(stack.KafkaAddrs...)),
		auditor.BatchLimits(40, 1<<20, 100*time.Millisecond), auditor.Backoff(20*time.Millisecond, 100*time.Millisecond),
		auditor.Checkpoints(e.signer, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// Fenced right after its first object: it stops without a manifest.
	if err := a.Run(context.Background()); !errors.Is(err, chain.ErrFenced) {
		t.Fatalf("auditor stopped with %v, want fenced", err)
	}
	longest := 0
	e.store.List(context.Background(), chain.ObjectPrefix, "", func(key string) error {
		obj, _, err := e.store.Get(context.Background(), key, "")
		if err != nil {
			t.Fatal(err)
		}
		lines, _ := chain.DecodeObject(obj)
		longest = max(longest, len(lines))
		return nil
	})
	if longest <= 7 {
		t.Fatalf("the longest batch object without manifest holds %d records, want more than the next writer's 7", longest)
	}
	archiveAll(t, e, 45) // batches of 7
	rep := assertExactlyOnce(t, e, 45)
	for _, w := range rep.Warnings {
		if strings.Contains(w, "not referenced") {
			t.Errorf("orphan not adopted: %s", w)
		}
	}
}

// noManifests is a bucket that stores batch objects but fences every
// manifest: the writer stops between the two PUTs, as a zombie does.
type noManifests struct{ chain.Store }

func (s *noManifests) PutIfAbsent(ctx context.Context, key string, body []byte) (string, error) {
	if strings.HasPrefix(key, chain.ManifestPrefix) {
		return "", fmt.Errorf("%s: injected: %w", key, chain.ErrFenced)
	}
	return s.Store.PutIfAbsent(ctx, key, body)
}

// TestRemovedCheckpointStopsTheAuditor anchors checkpoints in Kafka, then
// hides the newest one in the bucket: the auditor refuses to go on, and
// verify reading the anchor topic reports it.
func TestRemovedCheckpointStopsTheAuditor(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "anchored")
	anchorTopic := e.topic + ".checkpoints"
	if _, err := kadm.NewClient(kgoClient(t)).CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, anchorTopic); err != nil {
		t.Fatal(err)
	}
	produce(t, e.topic, 0, 30)
	archiveAll(t, e, 30, auditor.AnchorTopic(anchorTopic))
	kopts := []kgo.Opt{kgo.SeedBrokers(stack.KafkaAddrs...)}
	anchors, err := anchor.Read(ctx, kopts, anchorTopic, e.topic)
	if err != nil || len(anchors) == 0 {
		t.Fatalf("no checkpoint anchored in Kafka: %v", err)
	}
	newest, _ := anchor.Newest(anchors, chain.NewKeyring(e.signer.Public()))
	latest, _, _ := chain.LatestCheckpoint(ctx, e.store)
	if newest == nil || latest == nil || newest.Sequence != latest.Sequence {
		t.Fatalf("newest anchor %v, newest checkpoint in the bucket %v", newest, latest)
	}
	// Verify with Kafka: anchors and committed offsets agree with the trail.
	opts := []chain.VerifyOpt{chain.TrustedKey(e.signer.Public()), chain.Anchors(anchors...), chain.CheckOffsets(anchor.Offsets{Opts: kopts})}
	rep, err := chain.Verify(ctx, e.store, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("defects: %v", rep.Defects)
	}
	for _, pr := range rep.Partitions {
		if !pr.GapsChecked || pr.UncheckedGaps != 0 {
			t.Errorf("partition %d gaps not checked against Kafka: %+v", pr.Partition, pr)
		}
	}

	deleteMarkerOn(t, e, chain.CheckpointKey(latest.Sequence))
	wantAlarm(t, e, auditor.AnchorTopic(anchorTopic))
	rep, _ = chain.Verify(ctx, e.store, opts...)
	if rep.OK() {
		t.Fatal("verify accepts a trail missing its anchored checkpoint")
	}
}

func deleteMarkerOn(t *testing.T, e *env, key string) {
	t.Helper()
	if _, err := e.store.Client().DeleteObject(context.Background(), deleteInput(e.bucket, key)); err != nil {
		t.Fatal(err)
	}
}

func deleteInput(bucket, key string) *s3.DeleteObjectInput {
	return &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
}
