package masker

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/redact/leaktest"
	"github.com/pcistream/pcistream/schemas"
)

// TestDeadLettersHoldNoCardData plants a PAN in every common form, and CVVs,
// in the key, the value (text, JSON, binary), header names and header values
// of oversize log records, and scans logs.dlq, the audit events and the
// captured logs: no PAN in any encoding, no CVV. Dead letters do not rely on
// PAN detection, so every form must be caught, including the ones today's
// detector misses.
func TestDeadLettersHoldNoCardData(t *testing.T) {
	topics := config.Default().Topics
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := New(JSONEncoder{}, Topics(topics), Registerer(prometheus.NewRegistry()), MaxRecordBytes(1024), Logger(logger))
	if err != nil {
		t.Fatal(err)
	}
	const cvv = "468"
	pad := strings.Repeat(" ", 2048) // oversize
	var out []*kgo.Record
	off := int64(0)
	for _, f := range leaktest.Forms(visa) {
		esc, _ := json.Marshal(f.Text)
		values := [][]byte{
			[]byte("charge card " + f.Text + " cvv2=" + cvv + pad),
			[]byte(`{"msg":"charge","card_number":` + string(esc) + `,"cvv":"` + cvv + `","note":` + string(esc) + `,"payload":"{\"cvc\":\"` + cvv + `\"}"}` + pad),
			append([]byte{0xff, 0x00, 0x41, 0x11, 0x11, 0x11}, []byte(f.Text+pad)...),
		}
		for _, v := range values {
			rec := &kgo.Record{
				Topic: topics.LogsRaw, Partition: 0, Offset: off, Timestamp: time.UnixMilli(1764400000000),
				Key: []byte("k" + f.Text), Value: v,
				Headers: []kgo.RecordHeader{
					{Key: "x-pan-" + f.Text, Value: []byte("v")}, {Key: "X-Card-CVV", Value: []byte(cvv)},
					{Key: "card_number", Value: []byte(f.Text)}, {Key: "trace", Value: []byte("t " + f.Text)},
				},
			}
			off++
			if out, err = m.process(rec, out); err != nil {
				t.Fatal(err)
			}
		}
	}
	if out, err = m.endBatch(out); err != nil {
		t.Fatal(err)
	}
	check := func(where, s string) {
		t.Helper()
		if leaktest.Leaks(s, visa) {
			t.Errorf("%s: the PAN is readable", where)
		}
		if leaktest.HasCode(s, cvv) {
			t.Errorf("%s: holds the CVV", where)
		}
	}
	dlqs := 0
	for _, r := range out {
		switch r.Topic {
		case topics.LogsDLQ:
			dlqs++
			var d schemas.DLQRecord
			if err := json.Unmarshal(r.Value, &d); err != nil {
				t.Fatal(err)
			}
			where := "logs.dlq offset " + strconv.FormatInt(d.SourceOffset, 10)
			check(where+" masked_key", string(d.MaskedKey))
			check(where+" masked_value", string(d.MaskedValue))
			check(where+" reason", d.Reason)
			for _, h := range r.Headers {
				check(where+" header", h.Key+"="+string(h.Value))
				if strings.Contains(strings.ToLower(h.Key), "cvv") {
					t.Errorf("%s: CVV-named header kept", where)
				}
			}
		case topics.AuditEvents:
			var ev schemas.AuditEvent
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				t.Fatal(err)
			}
			attrs, _ := json.Marshal(ev.Attrs)
			check("audit event", ev.Subject+" "+ev.Reason+" "+string(attrs))
		}
	}
	if dlqs != int(off) {
		t.Fatalf("%d dead letters, want %d", dlqs, off)
	}
	check("logs", logs.String())
}
