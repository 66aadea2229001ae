package tokenizer

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/schemas"
)

// A worker restoring a state topic that older workers wrote (JSON entries)
// next to entries in the binary format dedups against both: existing state
// topics keep working across the format change.
func TestIdemStateTopicWithLegacyEntries(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ts := transformTime
	legacyCtx, binCtx := contextID("payment", "legacy"), contextID("payment", "binary")
	cl, err := kgo.NewClient(append(e.opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, r := range []*kgo.Record{
		{Key: []byte("idem-legacy"), Value: []byte(`{"ctx":"` + legacyCtx + `","ts":` + strconv.FormatInt(ts.UnixMilli(), 10) + `,"off":7,"part":0}`)},
		{Key: []byte("idem-binary"), Value: AppendIdempotencyEntry(nil, binCtx, ts.UnixMilli(), 8, 0)},
	} {
		r.Topic, r.Partition, r.Timestamp = e.topics.Idempotency, 0, ts
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	kr, _ := token.NewKeyring()
	tk := e.tokenizer(kr)
	for i, c := range []struct {
		idem, firstCtx, firstOff string
	}{{"idem-legacy", legacyCtx, "7"}, {"idem-binary", binCtx, "8"}, {"idem-new", "", ""}} {
		out := transformOne(t, tk, e.topics.PaymentsRaw, int64(100+i), nil, e.encode(payment("pay-"+c.idem, c.idem, luhnPAN("411111", 16))))
		var tokenized, dedup int
		for _, r := range out {
			switch r.Topic {
			case e.topics.PaymentsTokenized:
				tokenized++
			case e.topics.AuditEvents:
				var a schemas.AuditEvent
				if err := e.serde.Decode(ctx, r.Value, &a); err != nil {
					t.Fatal(err)
				}
				if a.Action == "dedup" {
					dedup++
					if a.Subject != c.firstCtx || a.Attrs["first_offset"] != c.firstOff {
						t.Errorf("%s: dedup of context %s, first offset %s; want %s, %s", c.idem, a.Subject, a.Attrs["first_offset"], c.firstCtx, c.firstOff)
					}
				}
			}
		}
		if want := c.firstCtx == ""; (tokenized == 1) != want || (dedup == 1) == want {
			t.Errorf("%s: %d tokenized events, %d dedup audits", c.idem, tokenized, dedup)
		}
	}
}

// StateJSONEntries (the rolling-upgrade mode) writes the legacy JSON that
// older releases read; by default the binary format is written. Either way
// the entry reads back as the same first sight.
func TestStateJSONEntriesWritesLegacyFormat(t *testing.T) {
	e := newEnv(t)
	kr, _ := token.NewKeyring()
	for _, c := range []struct {
		name  string
		opts  []Opt
		first byte
	}{{"default", nil, idemPacked}, {"json", []Opt{StateJSONEntries(true)}, '{'}} {
		tk := e.tokenizer(kr, c.opts...)
		idem := "idem-format-" + c.name
		out := transformOne(t, tk, e.topics.PaymentsRaw, 5, nil, e.encode(payment("pay-"+idem, idem, luhnPAN("411111", 16))))
		var vals [][]byte
		for _, r := range out {
			if r.Topic == e.topics.Idempotency {
				vals = append(vals, r.Value)
			}
		}
		if len(vals) != 1 || len(vals[0]) == 0 || vals[0][0] != c.first {
			t.Fatalf("%s: state records %q, want one starting with %q", c.name, vals, c.first)
		}
		got, err := parseIdem(vals[0])
		if err != nil || got.Context != contextID("payment", "pay-"+idem) || got.Offset != 5 {
			t.Fatalf("%s: entry reads back as %+v, %v", c.name, got, err)
		}
		if c.first == '{' {
			var legacy struct {
				Ctx  string `json:"ctx"`
				TS   int64  `json:"ts"`
				Off  int64  `json:"off"`
				Part int32  `json:"part"`
			}
			if err := json.Unmarshal(vals[0], &legacy); err != nil || legacy.Ctx != got.Context || legacy.TS != got.TS || legacy.Off != 5 {
				t.Fatalf("json: not the legacy shape: %s (%v)", vals[0], err)
			}
		}
	}
}
