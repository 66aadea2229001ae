package auditor_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/auditstore"
	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/s3x"
	"github.com/pcistream/pcistream/processors/auditor"
)

var stack *devstack.Stack

const testPAN = "4111 1111 1111 1111" // a well-known test card number

func TestMain(m *testing.M) {
	os.Exit(devstacktest.Main(m, &stack, devstacktest.Child("AUDITOR_CHILD", child)))
}

type env struct {
	topic, group, bucket string
	s3cfg                config.S3
	store                *auditstore.Store
	signer               chain.Signer
	keyPEM               []byte
}

func newEnv(t *testing.T, name string) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{topic: "audit." + name, group: "auditor-" + name, bucket: "audit-" + name, s3cfg: stack.S3}
	e.s3cfg.Bucket = e.bucket
	cl, err := s3x.NewClient(ctx, e.s3cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(e.bucket), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	e.store = auditstore.New(cl, e.bucket, auditstore.Retention(time.Hour))
	adm := kadm.NewClient(kgoClient(t))
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, e.topic); err != nil {
		t.Fatal(err)
	}
	e.keyPEM, _ = chain.GenerateKey()
	priv, _ := chain.ParsePrivateKey(e.keyPEM)
	e.signer = chain.NewSigner(priv)
	return e
}

func kgoClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	return devstacktest.Client(t, stack, opts...)
}

// produce writes n audit events (with ids from..from+n-1) transactionally,
// some of them carrying a PAN in free text that must never reach S3.
func produce(t *testing.T, topic string, from, n int) {
	t.Helper()
	cl := kgoClient(t, kgo.TransactionalID(fmt.Sprintf("prod-%s-%d", topic, from)), kgo.DefaultProduceTopic(topic))
	ctx := context.Background()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := from; i < from+n; i++ {
		ev := map[string]any{"id": fmt.Sprintf("ev-%06d", i), "time_ms": 1700000000000 + int64(i), "actor": "tokenizer",
			"action": "tokenize", "outcome": "ok", "topic": "payments.raw", "partition": 0, "offset": i, "subject": "tok_v1_abcdef"}
		if i%5 == 0 {
			ev["reason"] = "customer typed card " + testPAN + " in the memo"
		}
		if i%17 == 0 {
			ev["attrs"] = map[string]any{"note": "pan=" + strings.ReplaceAll(testPAN, " ", "")}
		}
		v, _ := json.Marshal(ev)
		key := []byte(fmt.Sprintf("ev-%06d", i))
		if i == from+3 {
			v = []byte("not json " + testPAN) // archived masked, with the decode error
		}
		cl.Produce(ctx, &kgo.Record{Key: key, Value: v}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
}

func runAuditor(t *testing.T, e *env, store chain.Store, reg prometheus.Registerer) (*auditor.Auditor, func() error) {
	t.Helper()
	a, err := auditor.New(store,
		auditor.Topic(e.topic), auditor.Group(e.group),
		auditor.ClientOpts(kgo.SeedBrokers(stack.KafkaAddrs...)),
		auditor.BatchLimits(7, 1<<20, 150*time.Millisecond),
		auditor.Checkpoints(e.signer, 300*time.Millisecond),
		auditor.Backoff(20*time.Millisecond, 200*time.Millisecond),
		auditor.Registerer(reg),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var rerr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case rerr = <-done:
			case <-time.After(30 * time.Second):
				rerr = errors.New("auditor did not stop")
			}
		})
		return rerr
	}
	t.Cleanup(func() { stop() })
	return a, stop
}

// archived verifies the chain and returns the archived event ids in chain
// order; it fails the test on any defect.
func archived(t *testing.T, e *env) (ids []string, rep *chain.Report) {
	t.Helper()
	rep, err := chain.Verify(context.Background(), e.store, chain.TrustedKey(e.signer.Public()),
		chain.OnBatch(func(m *chain.Manifest, recs []chain.Record) error {
			for _, r := range recs {
				ids = append(ids, recordID(r))
			}
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("chain defects: %v", rep.Defects)
	}
	return ids, rep
}

func recordID(r chain.Record) string {
	if r.DecodeError != "" {
		return "undecodable:" + r.Key
	}
	var ev struct {
		ID string `json:"id"`
	}
	json.Unmarshal(r.Event, &ev)
	return ev.ID
}

func waitFor(t *testing.T, what string, timeout time.Duration, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func countRecords(t *testing.T, e *env) int {
	n := 0
	for p := int32(0); p < 3; p++ {
		w, err := chain.OpenPartition(context.Background(), e.store, e.topic, p)
		if err != nil {
			return -1
		}
		if h := w.Head(); h != nil {
			n += int(h.TreeSize)
		}
	}
	return n
}

// assertExactlyOnce checks every produced id is archived exactly once.
func assertExactlyOnce(t *testing.T, e *env, n int) *chain.Report {
	t.Helper()
	ids, rep := archived(t, e)
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	if len(ids) != n {
		t.Errorf("archived %d records, produced %d", len(ids), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s archived %d times", id, c)
		}
	}
	return rep
}

// assertNoPAN scans every stored object for PANs, printing only masked forms.
func assertNoPAN(t *testing.T, e *env) {
	t.Helper()
	det := pan.New()
	ctx := context.Background()
	err := e.store.List(ctx, chain.Root, "", func(key string) error {
		b, _, err := e.store.Get(ctx, key, "")
		if err != nil {
			return err
		}
		if strings.HasSuffix(key, ".gz") {
			lines, err := chain.DecodeObject(b)
			if err != nil {
				return err
			}
			b = bytes.Join(lines, []byte{'\n'})
			for _, l := range lines {
				var r chain.Record
				json.Unmarshal(l, &r)
				if r.RawMasked != "" {
					raw, _ := base64.StdEncoding.DecodeString(r.RawMasked)
					b = append(b, raw...)
				}
			}
		}
		if ms := det.Find(nil, b); len(ms) > 0 {
			t.Errorf("PAN found in %s (%d matches, first ends in %s)", key, len(ms), ms[0].Last4[:])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRoundTripRestartAndVerify(t *testing.T) {
	e := newEnv(t, "roundtrip")
	reg := prometheus.NewRegistry()
	produce(t, e.topic, 0, 40)
	a, stop := runAuditor(t, e, e.store, reg)
	waitFor(t, "40 records archived", 30*time.Second, func() bool { return countRecords(t, e) == 40 })
	waitFor(t, "ready", 10*time.Second, func() bool { return a.Ready() == nil })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	rep := assertExactlyOnce(t, e, 40)
	if rep.Checkpoints == 0 {
		t.Fatal("no checkpoint written")
	}
	for _, pr := range rep.Partitions {
		if pr.SignedTreeSize != pr.TreeSize {
			t.Errorf("partition %d: signed %d of %d records after a graceful stop", pr.Partition, pr.SignedTreeSize, pr.TreeSize)
		}
	}
	if got := metricValue(t, reg, "pcistream_audit_records_total"); got != 40 {
		t.Errorf("records metric %v", got)
	}
	if got := metricValue(t, reg, "pcistream_audit_pans_masked_total"); got == 0 {
		t.Error("no PAN masked, but events carried PANs")
	}

	// A restart with committed offsets and more data continues the chain.
	produce(t, e.topic, 40, 25)
	_, stop = runAuditor(t, e, e.store, nil)
	waitFor(t, "65 records archived", 30*time.Second, func() bool { return countRecords(t, e) == 65 })
	stop()
	assertExactlyOnce(t, e, 65)
	assertNoPAN(t, e)
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestRefusesBucketWithoutObjectLock(t *testing.T) {
	ctx := context.Background()
	cl, _ := s3x.NewClient(ctx, stack.S3)
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("plain-bucket")}); err != nil {
		t.Fatal(err)
	}
	key, _ := chain.GenerateKey()
	priv, _ := chain.ParsePrivateKey(key)
	a, err := auditor.New(auditstore.New(cl, "plain-bucket"), auditor.ClientOpts(kgo.SeedBrokers(stack.KafkaAddrs...)),
		auditor.Checkpoints(chain.NewSigner(priv), time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "Object Lock") {
		t.Fatalf("Run against a bucket without Object Lock: %v", err)
	}
}

// proxy is a TCP forwarder the test can cut, simulating an S3 outage.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	addr   string
}

func startProxy(t *testing.T, target, addr string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
}

func TestS3OutageLosesNothing(t *testing.T) {
	e := newEnv(t, "outage")
	target := strings.TrimPrefix(stack.S3.Endpoint, "http://")
	px := startProxy(t, target, "127.0.0.1:0")
	viaProxy := e.s3cfg
	viaProxy.Endpoint = "http://" + px.addr
	cl, err := s3x.NewClient(context.Background(), viaProxy)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	a, stop := runAuditor(t, e, auditstore.New(cl, e.bucket, auditstore.Retention(time.Hour)), reg)
	produce(t, e.topic, 0, 20)
	waitFor(t, "first records archived", 30*time.Second, func() bool { return countRecords(t, e) == 20 })

	px.close() // S3 goes away
	produce(t, e.topic, 20, 30)
	waitFor(t, "not ready during the outage", 30*time.Second, func() bool { return a.Ready() != nil })
	waitFor(t, "failures counted", 10*time.Second, func() bool {
		return metricValue(t, reg, "pcistream_audit_write_failures_total") > 0
	})
	if n := countRecords(t, e); n != 20 {
		t.Fatalf("%d records archived while S3 was unreachable", n)
	}
	// Committed offsets must not have moved past what is archived.
	adm := kadm.NewClient(kgoClient(t))
	offs, err := adm.FetchOffsets(context.Background(), e.group)
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	offs.Each(func(o kadm.OffsetResponse) { committed += o.At })
	if committed > 20+6 { // 20 records + at most one txn marker per partition
		t.Fatalf("offsets committed past the archive during the outage: sum %d", committed)
	}

	px = startProxy(t, target, px.addr) // S3 is back on the same address
	defer px.close()
	waitFor(t, "all records archived after recovery", 60*time.Second, func() bool { return countRecords(t, e) == 50 })
	waitFor(t, "ready again", 10*time.Second, func() bool { return a.Ready() == nil })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, e, 50)
}

// TestSIGKILLMidBatch kills auditor child processes, once exactly between a
// batch object's PUT and its manifest's PUT and then at random moments, and
// checks the chain stays continuous with every record exactly once.
func TestSIGKILLMidBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	e := newEnv(t, "sigkill")
	produce(t, e.topic, 0, 60)
	keyFile := t.TempDir() + "/key.pem"
	os.WriteFile(keyFile, e.keyPEM, 0o600)
	spawn := func(killAfterObjects int) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "AUDITOR_CHILD=1",
			"CHILD_BROKERS="+strings.Join(stack.KafkaAddrs, ","), "CHILD_S3="+stack.S3.Endpoint,
			"CHILD_BUCKET="+e.bucket, "CHILD_TOPIC="+e.topic, "CHILD_GROUP="+e.group, "CHILD_KEY="+keyFile,
			fmt.Sprintf("CHILD_KILL_AFTER_OBJECTS=%d", killAfterObjects))
		if testing.Verbose() {
			cmd.Stderr = os.Stderr
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	// 1: the child SIGKILLs itself right after its second object PUT.
	c := spawn(2)
	err := c.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v", err)
	}
	orphans := 0
	e.store.List(context.Background(), chain.ObjectPrefix, "", func(string) error { orphans++; return nil })
	if orphans != 2 {
		t.Fatalf("%d objects after the kill, want 2", orphans)
	}
	// 2: killed from outside at random moments while more data arrives.
	for i := 0; i < 3; i++ {
		before := countRecords(t, e)
		produce(t, e.topic, 60+i*20, 20)
		c := spawn(0)
		// Kill once it is writing batches, at a different moment each time.
		waitFor(t, "child progress", 90*time.Second, func() bool { return countRecords(t, e) > before })
		time.Sleep(time.Duration(i*40) * time.Millisecond)
		c.Process.Signal(syscall.SIGKILL)
		c.Wait()
	}
	// 3: a final child runs to completion.
	c = spawn(0)
	waitFor(t, "every record archived", 120*time.Second, func() bool { return countRecords(t, e) == 120 })
	c.Process.Signal(syscall.SIGTERM)
	c.Wait()
	rep := assertExactlyOnce(t, e, 120)
	for _, w := range rep.Warnings {
		if strings.Contains(w, "not referenced") {
			t.Errorf("orphan left behind: %s", w)
		}
	}
}

// killingStore SIGKILLs the process after the Nth batch-object PUT, before
// the manifest PUT: the worst moment for a crash.
type killingStore struct {
	chain.Store
	after, n int
	mu       sync.Mutex
}

func (k *killingStore) PutIfAbsent(ctx context.Context, key string, body []byte) (string, error) {
	v, err := k.Store.PutIfAbsent(ctx, key, body)
	if err == nil && strings.HasSuffix(key, ".jsonl.gz") {
		k.mu.Lock()
		k.n++
		n := k.n
		k.mu.Unlock()
		if k.after > 0 && n >= k.after {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	return v, err
}

func child() int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		ch := make(chan os.Signal, 1)
		signalNotify(ch)
		<-ch
		cancel()
	}()
	s3c := config.S3{Endpoint: os.Getenv("CHILD_S3"), Region: config.DefaultS3Region, Bucket: os.Getenv("CHILD_BUCKET"),
		AccessKey: config.DefaultS3AccessKey, SecretKey: config.DefaultS3SecretKey, PathStyle: true}
	cl, err := s3x.NewClient(ctx, s3c)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var store chain.Store = auditstore.New(cl, s3c.Bucket, auditstore.Retention(time.Hour))
	var after int
	fmt.Sscan(os.Getenv("CHILD_KILL_AFTER_OBJECTS"), &after)
	if after > 0 {
		store = &killingStore{Store: store, after: after}
	}
	sg, err := chain.LoadSigner(os.Getenv("CHILD_KEY"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	a, err := auditor.New(store, auditor.Topic(os.Getenv("CHILD_TOPIC")), auditor.Group(os.Getenv("CHILD_GROUP")),
		auditor.ClientOpts(kgo.SeedBrokers(strings.Split(os.Getenv("CHILD_BROKERS"), ",")...),
			// Killed members must leave the group quickly.
			kgo.SessionTimeout(6*time.Second), kgo.RebalanceTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond)),
		auditor.BatchLimits(7, 1<<20, 100*time.Millisecond), auditor.Checkpoints(sg, 200*time.Millisecond),
		auditor.Backoff(20*time.Millisecond, 200*time.Millisecond),
		auditor.Logger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "auditor:", err)
		return 1
	}
	return 0
}
