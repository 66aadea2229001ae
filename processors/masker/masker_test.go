package masker

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/pan/pantest"
	"github.com/pcistream/pcistream/schemas"
)

const visa = "4111111111111111"

// leaks reports how many PANs are in any key, value, header key or header
// value of recs.
func leaks(recs []*kgo.Record) int {
	d := pan.New()
	n := 0
	for _, r := range recs {
		n += len(d.Find(nil, r.Key)) + len(d.Find(nil, r.Value))
		for _, h := range r.Headers {
			n += len(d.FindString(nil, h.Key)) + len(d.Find(nil, h.Value))
		}
	}
	return n
}

func TestProcessMasksKeyValueHeaders(t *testing.T) {
	reg := prometheus.NewRegistry()
	topics := config.Default().Topics
	m, err := New(JSONEncoder{}, Topics(topics), Registerer(reg), MaxRecordBytes(4096))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	amex := pantest.Format(pantest.Generate(r, pan.Amex, 15), pantest.Spaces)
	binary := append([]byte{0x00, 0xff, 0xfe, ' '}, []byte(visa)...)
	binary = append(binary, 0x01, 0x80)
	in := []*kgo.Record{
		{Topic: topics.LogsRaw, Partition: 0, Offset: 10, Key: []byte("user-" + visa), Value: []byte(`{"msg":"charge","card":"` + amex + `"}`),
			Headers: []kgo.RecordHeader{{Key: "x-card-" + visa, Value: []byte("pan=" + visa)}, {Key: "trace", Value: []byte("abc")}}},
		{Topic: topics.LogsRaw, Partition: 0, Offset: 11, Value: binary},
		{Topic: topics.LogsRaw, Partition: 1, Offset: 5, Value: []byte("clean line 2026-11-23 12:00:00 status=200")},
		{Topic: topics.LogsRaw, Partition: 1, Offset: 6, Value: []byte(strings.Repeat("card "+visa+" ", 400))}, // oversize
	}
	var emitted []*kgo.Record
	for _, rec := range in {
		rec.Timestamp = time.UnixMilli(1732361330000 + rec.Offset)
		if emitted, err = m.process(rec, emitted); err != nil {
			t.Fatal(err)
		}
	}
	if emitted, err = m.endBatch(emitted); err != nil {
		t.Fatal(err)
	}
	if n := leaks(emitted); n != 0 {
		t.Fatalf("%d PANs in the masker's output", n)
	}
	byTopic := map[string][]*kgo.Record{}
	for _, r := range emitted {
		byTopic[r.Topic] = append(byTopic[r.Topic], r)
	}
	san := byTopic[topics.LogsSanitized]
	if len(san) != 3 {
		t.Fatalf("%d sanitized records, want 3", len(san))
	}
	if string(san[0].Key) != "user-411111******1111" ||
		!strings.Contains(string(san[0].Value), `"card":"**** ****** *`+amex[len(amex)-4:]+`"`) || // 15 digits: last four only
		san[0].Headers[0].Key != "x-card-411111******1111" || string(san[0].Headers[1].Value) != "abc" {
		t.Errorf("record 0 not masked as expected: key %q", pantest.Redact(string(san[0].Key)))
	}
	if len(san[1].Value) != len(binary) || !bytes.Equal(san[1].Value[:4], binary[:4]) || !bytes.Contains(san[1].Value, []byte("411111******1111")) {
		t.Errorf("binary record not masked as bytes")
	}
	if string(san[2].Value) != string(in[2].Value) {
		t.Errorf("clean record changed")
	}
	dlq := byTopic[topics.LogsDLQ]
	if len(dlq) != 1 || len(dlq[0].Headers) == 0 || dlq[0].Headers[0].Key != ReasonHeader || string(dlq[0].Headers[0].Value) != ReasonOversize {
		t.Fatalf("oversize record: dlq %v", dlq)
	}
	var d schemas.DLQRecord
	if err := json.Unmarshal(dlq[0].Value, &d); err != nil {
		t.Fatal(err)
	}
	if d.ReasonCode != ReasonOversize || d.SourceOffset != 6 || d.SourcePartition != 1 || !bytes.HasPrefix(d.MaskedValue, []byte("card 411111******1111 ")) {
		t.Errorf("DLQ record: %+v", d.ReasonCode)
	}
	audits := byTopic[topics.AuditEvents]
	// one per partition + one for the dead letter
	if len(audits) != 3 {
		t.Fatalf("%d audit events, want 3", len(audits))
	}
	var evs []schemas.AuditEvent
	for _, a := range audits {
		var ev schemas.AuditEvent
		if err := json.Unmarshal(a.Value, &ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	p0, p1 := evs[1], evs[2] // dlq event first (emitted in Process)
	if evs[0].Action != "dlq" || p0.Action != "mask" || p0.Partition != 0 || p0.Attrs["records"] != "2" || p0.Attrs["pans_masked"] != "5" ||
		p0.Attrs["first_offset"] != "10" || p0.Attrs["last_offset"] != "11" || p0.Attrs["policy"] != "first6last4" {
		t.Errorf("partition 0 audit: %+v", p0)
	}
	if p1.Partition != 1 || p1.Attrs["records"] != "2" || p1.Attrs["dlq"] != "1" || p1.Attrs["pans_masked"] != "400" {
		t.Errorf("partition 1 audit: %+v", p1.Attrs)
	}
	// Metrics move only when the transaction commits.
	c := func() float64 {
		return counter(t, reg, "pcistream_pans_masked_total", map[string]string{"policy": "first6last4", "topic": topics.LogsRaw})
	}
	if v := c(); v != 0 {
		t.Errorf("metric before commit: %v", v)
	}
	m.Ended(true)
	if v := c(); v != 405 {
		t.Errorf("pcistream_pans_masked_total = %v, want 405", v)
	}
	if v := counter(t, reg, "pcistream_masker_dlq_total", map[string]string{"topic": topics.LogsRaw, "reason": ReasonOversize}); v != 1 {
		t.Errorf("dlq metric = %v", v)
	}
	// An aborted batch adds nothing.
	var out eos.Out
	for _, rec := range in[:1] {
		_ = m.Process(context.Background(), rec, &out)
	}
	_ = m.EndBatch(context.Background(), &out)
	m.Ended(false)
	if v := c(); v != 405 {
		t.Errorf("metric after abort = %v", v)
	}
}

// TestReplayIsDeterministic: the same input yields byte-identical output.
func TestReplayIsDeterministic(t *testing.T) {
	run := func() []*kgo.Record {
		m, _ := New(JSONEncoder{})
		var out []*kgo.Record
		for p := int32(2); p >= 0; p-- {
			for o := int64(0); o < 5; o++ {
				out, _ = m.process(&kgo.Record{Topic: "logs.raw", Partition: p, Offset: o,
					Timestamp: time.UnixMilli(1732361330000), Value: []byte("pan " + visa)}, out)
			}
		}
		out, _ = m.endBatch(out)
		return out
	}
	a, b := run(), run()
	if len(a) != len(b) {
		t.Fatal("different lengths")
	}
	for i := range a {
		if a[i].Topic != b[i].Topic || !bytes.Equal(a[i].Key, b[i].Key) || !bytes.Equal(a[i].Value, b[i].Value) || !a[i].Timestamp.Equal(b[i].Timestamp) {
			t.Fatalf("record %d differs between runs", i)
		}
	}
}

func TestNewNeedsEncoder(t *testing.T) {
	if _, err := New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

// counter returns the value of the counter name{labels} in reg (0 if absent).
func counter(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
