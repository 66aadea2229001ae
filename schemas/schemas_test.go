package schemas_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/schemas"
)

var stack *devstack.Stack

func TestMain(m *testing.M) {
	os.Exit(devstacktest.Main(m, &stack, devstacktest.StackOpts(devstack.WithoutS3()), devstacktest.Setup()))
}

func serde(t *testing.T) (*schemas.Serde, *sr.Client) {
	t.Helper()
	cfg := stack.Config()
	s, err := schemas.Open(context.Background(), cfg.Registry, cfg.Topics)
	if err != nil {
		t.Fatal(err)
	}
	return s, s.Client()
}

func TestRoundTrip(t *testing.T) {
	s, _ := serde(t)
	in := schemas.AuditEvent{ID: "x", Time: 1, Actor: "a", Action: "tokenize", Outcome: "ok", Topic: "t", Partition: 2, Offset: 3, Subject: "tok_v1_abc", Attrs: map[string]string{"k": "v"}}
	b, err := s.Encode(&in)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0 {
		t.Fatalf("magic byte %d", b[0])
	}
	var out schemas.AuditEvent
	if err := s.Decode(context.Background(), b, &out); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(in) != fmt.Sprint(out) {
		t.Fatalf("round trip: %+v != %+v", out, in)
	}
}

func TestRegisterIsIdempotent(t *testing.T) {
	cl, _ := sr.NewClient(sr.URLs(stack.RegistryURL))
	a, err := schemas.Register(context.Background(), cl, stack.Config().Topics)
	if err != nil {
		t.Fatal(err)
	}
	b, err := schemas.Register(context.Background(), cl, stack.Config().Topics)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("second registration changed ids: %v vs %v", a, b)
	}
}

func TestDecodeErrors(t *testing.T) {
	s, _ := serde(t)
	ctx := context.Background()
	var p schemas.RawPayment
	if err := s.Decode(ctx, []byte("not avro"), &p); !errors.Is(err, schemas.ErrMalformed) {
		t.Fatalf("junk: %v, want ErrMalformed", err)
	}
	if err := s.Decode(ctx, []byte{0, 0, 0, 0x7f, 0x7f, 1, 2}, &p); !errors.Is(err, schemas.ErrUnknownSchemaID) {
		t.Fatalf("unknown id: %v, want ErrUnknownSchemaID", err)
	}
	id, _ := s.ID(&p)
	bad := []byte{0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id), 0xff, 0xff, 0xff}
	if err := s.Decode(ctx, bad, &p); !errors.Is(err, schemas.ErrMalformed) {
		t.Fatalf("truncated avro: %v, want ErrMalformed", err)
	}
}

// TestOlderWriterResolves: a producer still on an older schema version (no
// metadata field) decodes into the current type via schema resolution.
func TestOlderWriterResolves(t *testing.T) {
	s, cl := serde(t)
	ctx := context.Background()
	old := `{"type":"record","name":"AuditEvent","namespace":"io.pcistream.audit","fields":[
	 {"name":"id","type":"string"},{"name":"time_ms","type":"long"},{"name":"actor","type":"string"},
	 {"name":"action","type":"string"},{"name":"outcome","type":"string"},{"name":"topic","type":"string"},
	 {"name":"partition","type":"int"},{"name":"offset","type":"long"},{"name":"subject","type":"string"}]}`
	ss, err := cl.CreateSchema(ctx, "older-writer-value", sr.Schema{Schema: old, Type: sr.TypeAvro})
	if err != nil {
		t.Fatal(err)
	}
	// Avro for the old schema: strings are zigzag length + bytes.
	body := []byte{2, 'i', 2, 2, 'a', 2, 'b', 2, 'c', 2, 't', 4, 6, 2, 's'}
	b := append([]byte{0, byte(ss.ID >> 24), byte(ss.ID >> 16), byte(ss.ID >> 8), byte(ss.ID)}, body...)
	var ev schemas.AuditEvent
	if err := s.Decode(ctx, b, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.ID != "i" || ev.Subject != "s" || ev.Partition != 2 || ev.Offset != 3 || ev.Reason != "" {
		t.Fatalf("resolved %+v", ev)
	}
}

// TestAuditAttrsIsLastField pins the assumption deterministic audit
// encoding relies on.
func TestAuditAttrsIsLastField(t *testing.T) {
	defs, err := schemas.Defs()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range defs {
		if d.File != "audit_event.avsc" {
			continue
		}
		rs := d.Schema.(*avro.RecordSchema)
		last := rs.Fields()[len(rs.Fields())-1]
		if last.Name() != "attrs" || last.Type().Type() != avro.Map {
			t.Fatalf("audit schema's last field is %q; the serde's sorted attrs encoding needs attrs last", last.Name())
		}
		return
	}
	t.Fatal("audit schema not found")
}

// TestAuditEncodingIsDeterministic: equal events with many attrs encode to
// equal bytes, and decode back to the same attrs.
func TestAuditEncodingIsDeterministic(t *testing.T) {
	s, _ := serde(t)
	ev := schemas.AuditEvent{ID: "x", Action: "mask", Attrs: map[string]string{}}
	for i := 0; i < 20; i++ {
		ev.Attrs[fmt.Sprintf("k%02d", i)] = fmt.Sprint(i)
	}
	first, err := s.Encode(&ev)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		b, _ := s.Encode(ev)
		if !bytes.Equal(b, first) {
			t.Fatal("the same audit event encoded to different bytes")
		}
	}
	var back schemas.AuditEvent
	if err := s.Decode(context.Background(), first, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Attrs) != 20 || back.Attrs["k07"] != "7" {
		t.Fatalf("attrs after round trip: %v", back.Attrs)
	}
	if len(ev.Attrs) != 20 {
		t.Fatal("Encode changed the caller's event")
	}
}
