package masker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/pan/pantest"
	"github.com/pcistream/pcistream/schemas"
)

// One embedded stack per test package (versitygw allows one gateway per
// process; the masker needs no S3).
var stack *devstack.Stack

func TestMain(m *testing.M) {
	os.Exit(devstacktest.Main(m, &stack, devstacktest.StackOpts(devstack.WithoutS3())))
}

// TestEndToEnd runs the masker in the shared exactly-once loop on the
// embedded Kafka and registry: every record comes out masked on
// logs.sanitized (read_committed), the oversize one on logs.dlq with its
// reason, the audit events decode with the registered schema and carry the
// counts, and no PAN appears in any output topic.
func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	tp := devstacktest.Topics(t)
	opts := devstacktest.Opts(stack)
	serde := devstacktest.Apply(t, stack, tp)

	// Input: 200 log lines with PANs of every network in every style,
	// plus clean lines and one oversize record.
	r := rand.New(rand.NewPCG(21, 22))
	var in []*kgo.Record
	wantPANs := 0
	for i := 0; i < 200; i++ {
		n := pan.Networks()[i%len(pan.Networks())]
		ls := pantest.Lengths(n)
		st := pantest.Styles()[i%len(pantest.Styles())]
		c := pantest.Contexts()[i%len(pantest.Contexts())]
		if !c.Fits(st) {
			st = pantest.Contiguous
		}
		text, _ := pantest.Embed(pantest.Format(pantest.Generate(r, n, ls[i%len(ls)]), st), c)
		rec := &kgo.Record{Topic: tp.LogsRaw, Value: []byte(text), Key: []byte(fmt.Sprintf("host-%d", i%7))}
		wantPANs++
		if i%10 == 0 {
			rec.Headers = []kgo.RecordHeader{{Key: "x-card", Value: pantest.Generate(r, pan.Visa, 16)}}
			wantPANs++
		}
		in = append(in, rec, &kgo.Record{Topic: tp.LogsRaw, Value: []byte(fmt.Sprintf("GET /healthz 200 %dms", i))})
	}
	in = append(in, &kgo.Record{Topic: tp.LogsRaw, Value: []byte(strings.Repeat("card 4111111111111111 ", 100))})
	pcl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := pcl.ProduceSync(ctx, in...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	pcl.Close()

	reg := prometheus.NewRegistry()
	m, err := New(serde, Topics(tp), MaxRecordBytes(1024), Registerer(reg))
	if err != nil {
		t.Fatal(err)
	}
	loop, err := NewLoop(m, opts, eos.Group("masker-e2e"), eos.TransactionalID("masker-e2e-txn"), eos.MaxPollRecords(50),
		eos.SessionTimeout(6*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- loop.Run(runCtx) }()

	san := devstacktest.WaitStable(t, stack, tp.LogsSanitized, len(in)-1, 60*time.Second)
	dlq := devstacktest.WaitStable(t, stack, tp.LogsDLQ, 1, 30*time.Second)
	// Metrics are applied after the commit; wait for the last one.
	deadline := time.Now().Add(30 * time.Second)
	for counter(t, reg, "pcistream_pans_masked_total", map[string]string{"policy": "first6last4", "topic": tp.LogsRaw}) < float64(wantPANs+100) &&
		time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	audit := devstacktest.ReadStable(t, stack, tp.AuditEvents)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("loop: %v", err)
	}

	if len(san) != len(in)-1 {
		t.Errorf("%d sanitized records, want %d", len(san), len(in)-1)
	}
	for name, recs := range map[string][]*kgo.Record{"sanitized": san, "dlq": dlq, "audit": audit} {
		if n := leaks(recs); n != 0 {
			t.Errorf("%s: %d PANs leaked", name, n)
		}
	}
	if len(dlq) != 1 || string(dlq[0].Headers[0].Value) != ReasonOversize {
		t.Fatalf("dlq: %d records", len(dlq))
	}
	var dr schemas.DLQRecord
	if err := serde.Decode(ctx, dlq[0].Value, &dr); err != nil || dr.ReasonCode != ReasonOversize || !strings.HasPrefix(string(dr.MaskedValue), "card 411111******1111") {
		t.Errorf("dlq record: err %v code %q", err, dr.ReasonCode)
	}
	// Audit: the counts add up, whatever the batching.
	records, pans, dead := 0, 0, 0
	for _, a := range audit {
		var ev schemas.AuditEvent
		if err := serde.Decode(ctx, a.Value, &ev); err != nil {
			t.Fatalf("audit event: %v", err)
		}
		if ev.Action != "mask" {
			continue
		}
		var nr, np, nd int
		fmt.Sscan(ev.Attrs["records"], &nr)
		fmt.Sscan(ev.Attrs["pans_masked"], &np)
		fmt.Sscan(ev.Attrs["dlq"], &nd)
		records, pans, dead = records+nr, pans+np, dead+nd
	}
	if records != len(in) || pans != wantPANs+100 || dead != 1 {
		t.Errorf("audit totals: records %d (want %d), pans %d (want %d), dlq %d", records, len(in), pans, wantPANs+100, dead)
	}
	if v := counter(t, reg, "pcistream_pans_masked_total", map[string]string{"policy": "first6last4", "topic": tp.LogsRaw}); v != float64(wantPANs+100) {
		t.Errorf("pcistream_pans_masked_total = %v, want %d", v, wantPANs+100)
	}
}
