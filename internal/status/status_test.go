package status_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/status"
	"github.com/pcistream/pcistream/schemas"
)

var stack *devstack.Stack

func TestMain(m *testing.M) {
	os.Exit(devstacktest.Main(m, &stack, devstacktest.StackOpts(devstack.WithoutS3())))
}

// TestCollect runs a consumer group part way through a topic, dead-letters a
// few records and checks what status reports: the group's state, member and
// lag, how long ago it last progressed, dead letters by reason, and a group
// that never ran.
func TestCollect(t *testing.T) {
	ctx := context.Background()
	tp := devstacktest.Topics(t)
	serde := devstacktest.Apply(t, stack, tp)
	input := devstacktest.Name(t, "input")
	devstacktest.CreateTopic(t, stack, input, 1)
	group := devstacktest.Name(t, "group")

	prod := devstacktest.Client(t, stack)
	old := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 5 {
		rec := &kgo.Record{Topic: input, Value: []byte{byte('a' + i)}, Timestamp: old.Add(time.Duration(i) * time.Second)}
		if err := prod.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for i, reason := range []string{"invalid_pan", "invalid_pan", "malformed_avro"} {
		b, err := serde.Encode(&schemas.DLQRecord{Processor: "tokenizer", ReasonCode: reason, Reason: reason, SourceTopic: tp.PaymentsRaw, SourceOffset: int64(i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: tp.PaymentsDLQ, Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consumeAndCommit(t, input, group, 3)

	rep, err := status.Collect(ctx, status.Sources{
		ClientOpts: devstacktest.Opts(stack), Serde: serde, Audit: chain.NewDirStore(t.TempDir()),
	}, []status.Processor{
		{Name: "tokenizer", Group: group, DLQ: tp.PaymentsDLQ},
		{Name: "masker", Group: devstacktest.Name(t, "never-ran")},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, mask := rep.Processors[0], rep.Processors[1]
	if tok.State != "Empty" || tok.TotalLag != 2 || len(tok.Lag) != 1 || tok.Lag[0].Committed != 3 {
		t.Errorf("tokenizer: state %q, lag %d, rows %+v; want Empty, 2, committed 3", tok.State, tok.TotalLag, tok.Lag)
	}
	if want := old.Add(2 * time.Second); tok.LastProgress == nil || !tok.LastProgress.Equal(want) {
		t.Errorf("last progress %v, want %v (the third record's time)", tok.LastProgress, want)
	}
	if d := tok.DLQ; d == nil || d.Total != 3 || d.ByReason["invalid_pan"] != 2 || d.ByReason["malformed_avro"] != 1 {
		t.Errorf("dead letters %+v, want 2 invalid_pan and 1 malformed_avro", d)
	}
	if mask.State != status.NoGroup {
		t.Errorf("a group that never ran: state %q, want %q", mask.State, status.NoGroup)
	}
	if rep.Audit == nil || rep.Audit.Checkpoint != nil || len(rep.Errors) != 0 {
		t.Errorf("audit %+v, errors %v: want no checkpoint and no errors", rep.Audit, rep.Errors)
	}
	var tbl, js bytes.Buffer
	if err := status.WriteTable(&tbl, rep); err != nil {
		t.Fatal(err)
	}
	if err := status.WriteJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"invalid_pan", "lag 2", "NoGroup", "no checkpoint yet"} {
		if !strings.Contains(tbl.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, tbl.String())
		}
	}
	if !strings.Contains(js.String(), `"total_lag": 2`) {
		t.Errorf("json lacks the lag:\n%s", js.String())
	}
}

// consumeAndCommit consumes n records of topic in group and commits them.
func consumeAndCommit(t *testing.T, topic, group string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := devstacktest.Client(t, stack, kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollRecords(ctx, n-len(got))
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got = append(got, fs.Records()...)
	}
	if err := cl.CommitRecords(ctx, got...); err != nil {
		t.Fatal(err)
	}
	cl.Close() // leave the group: it is Empty with committed offsets
}

// TestJobsApart commits offsets for a live group and a replay job's group
// on one topic: the processor's view shows only the live group, and the job
// is listed apart, with its processor, id and progress.
func TestJobsApart(t *testing.T) {
	ctx := context.Background()
	input := devstacktest.Name(t, "input")
	devstacktest.CreateTopic(t, stack, input, 1)
	prod := devstacktest.Client(t, stack)
	for i := range 4 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: input, Value: []byte{byte('a' + i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	live := devstacktest.Name(t, "live")
	prefix := devstacktest.Name(t, "replay") + "-"
	job := prefix + "masker-abc123"
	consumeAndCommit(t, input, live, 1)
	consumeAndCommit(t, input, job, 4)

	rep, err := status.Collect(ctx, status.Sources{ClientOpts: devstacktest.Opts(stack), JobGroupPrefix: prefix},
		[]status.Processor{{Name: "masker", Group: live}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Processors) != 1 || rep.Processors[0].Group != live || rep.Processors[0].TotalLag != 3 {
		t.Fatalf("processors %+v: want the live group alone, lag 3", rep.Processors)
	}
	if len(rep.Jobs) != 1 {
		t.Fatalf("jobs %+v: want the one job", rep.Jobs)
	}
	j := rep.Jobs[0]
	if j.Group != job || j.Processor != "masker" || j.Job != "abc123" || j.ToLogEnd != 0 || len(j.Lag) != 1 || j.Lag[0].Committed != 4 {
		t.Errorf("job %+v: want masker abc123 committed 4, 0 to log end", j)
	}
	var tbl bytes.Buffer
	if err := status.WriteTable(&tbl, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tbl.String(), "replay and redrive jobs") || !strings.Contains(tbl.String(), "job abc123") {
		t.Errorf("table lacks the job:\n%s", tbl.String())
	}
}

// TestRearchives lists the auditor's re-archive jobs in the audit bucket: a
// finished one (its checkpoint written) and an interrupted one (batches,
// no checkpoint), each with its prefix, and nothing of the live trail.
func TestRearchives(t *testing.T) {
	ctx := context.Background()
	bucket := chain.NewDirStore(t.TempDir())
	pem, _ := chain.GenerateKey()
	priv, err := chain.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	sg := chain.NewSigner(priv)
	archive := func(s chain.Store, part int32, n int) {
		t.Helper()
		w, err := chain.OpenPartition(ctx, s, "audit.events", part, chain.WriterSigner(sg))
		if err != nil {
			t.Fatal(err)
		}
		var recs []chain.Record
		for o := range int64(n) {
			recs = append(recs, chain.Record{Partition: part, Offset: o, TimeMs: 1, Event: []byte(`{"id":"x"}`)})
		}
		if _, err := w.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	archive(bucket, 0, 2) // the live trail
	done := chain.Prefixed(bucket, chain.RearchiveRoot+"job-done/")
	archive(done, 0, 3)
	archive(done, 1, 4)
	if _, err := chain.WriteCheckpoint(ctx, done, sg, time.Now()); err != nil {
		t.Fatal(err)
	}
	archive(chain.Prefixed(bucket, chain.RearchiveRoot+"job-cut/"), 2, 5)

	rep, err := status.Collect(ctx, status.Sources{ClientOpts: devstacktest.Opts(stack), Audit: bucket}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) != 0 || len(rep.Rearchives) != 2 {
		t.Fatalf("re-archives %+v, errors %v: want two jobs", rep.Rearchives, rep.Errors)
	}
	cut, fin := rep.Rearchives[0], rep.Rearchives[1]
	if cut.Prefix != "replays/job-cut/" || cut.Batches != 1 || cut.Checkpoint != nil {
		t.Errorf("interrupted job %+v, want replays/job-cut/ with 1 batch and no checkpoint", cut)
	}
	if fin.Prefix != "replays/job-done/" || fin.Batches != 2 || fin.Checkpoint == nil || len(fin.Checkpoint.Heads) != 2 {
		t.Errorf("finished job %+v, want replays/job-done/ with 2 batches and a checkpoint over 2 partitions", fin)
	}
	var out bytes.Buffer
	if err := status.WriteTable(&out, rep); err != nil {
		t.Fatal(err)
	}
	for prefix, want := range map[string]string{"replays/job-cut/": "unfinished  1 batches", "replays/job-done/": "finished    2 batches, 7 records in 2 partitions"} {
		found := false
		for _, line := range strings.Split(out.String(), "\n") {
			found = found || strings.Contains(line, prefix) && strings.Contains(line, want)
		}
		if !found {
			t.Errorf("table has no line with %q and %q:\n%s", prefix, want, out.String())
		}
	}
}
