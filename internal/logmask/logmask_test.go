package logmask_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/logmask"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/pan/pantest"
)

const (
	visa       = "4111111111111111"
	visaMasked = "411111******1111"
	amex       = "378282246310005"
)

type stringer struct{}

func (stringer) String() string { return "card " + visa }

type card struct {
	Number string
	Exp    string
}

type valuer struct{}

func (valuer) LogValue() slog.Value { return slog.StringValue("pan=" + visa) }

type textM struct{}

func (textM) MarshalText() ([]byte, error) { return []byte("t:" + amex), nil }

func logAll(l *slog.Logger) {
	l.Info("charge failed for "+visa, "card", visa)
	l.Info("number", "n", int64(4111111111111111), "u", uint64(5555555555554444), "f", float64(4111111111111111))
	l.Error("upstream", "err", fmt.Errorf("declined: card %s: %w", visa, errors.New("insufficient funds")))
	l.Info("stringer", "s", stringer{}, "tm", textM{}, "v", valuer{})
	l.Info("bytes", "raw", []byte("pan "+visa+" end"))
	l.Info("group", slog.Group("payment", slog.String("pan", visa), slog.Group("inner", "amex", amex)))
	l.Info("struct", "c", card{Number: visa, Exp: "12/27"}, "m", map[string]string{"pan": visa})
	l.Info("key", visa, "value")
	l.With("card", visa).WithGroup("g"+amex).Info("with", "x", amex)
}

func TestHandlerMasksEverything(t *testing.T) {
	d := pan.New()
	for _, isJSON := range []bool{false, true} {
		var buf bytes.Buffer
		logAll(logmask.New(&buf, slog.LevelDebug, isJSON))
		out := buf.String()
		if ms := d.FindString(nil, out); len(ms) != 0 {
			t.Fatalf("json=%v: %d PANs leaked; output (redacted):\n%s", isJSON, len(ms), pantest.Redact(out))
		}
		if strings.Count(out, visaMasked) < 10 {
			t.Errorf("json=%v: expected masked forms in output:\n%s", isJSON, pantest.Redact(out))
		}
		if isJSON {
			// []byte is base64 in JSON: decode and check it too.
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("bad JSON line: %v", err)
				}
				if raw, ok := rec["raw"].(string); ok {
					b, err := base64.StdEncoding.DecodeString(raw)
					if err != nil || d.Contains(b) || !bytes.Contains(b, []byte(visaMasked)) {
						t.Errorf("[]byte attr not masked (err %v)", err)
					}
				}
			}
		}
	}
}

func TestCleanValuesKeepTheirForm(t *testing.T) {
	var buf bytes.Buffer
	l := logmask.New(&buf, slog.LevelInfo, true)
	l.Info("ok", "n", 42, "c", card{Number: "tok_v1_abcdefghijklmnopqrstuvwxyzabcdef", Exp: "12/27"}, "err", errors.New("boom"))
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["n"] != float64(42) {
		t.Errorf("int changed: %v", rec["n"])
	}
	if c, ok := rec["c"].(map[string]any); !ok || c["Exp"] != "12/27" {
		t.Errorf("struct lost its JSON form: %v", rec["c"])
	}
	if rec["err"] != "boom" {
		t.Errorf("err: %v", rec["err"])
	}
}

func TestPolicyAndLevel(t *testing.T) {
	var buf bytes.Buffer
	h := logmask.NewHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}), pan.New(), logmask.WithPolicy(pan.Full))
	if h.Enabled(context.Background(), slog.LevelInfo) {
		t.Error("info enabled under warn")
	}
	l := slog.New(h)
	l.Info("dropped " + visa)
	l.Warn("kept " + visa)
	out := buf.String()
	if strings.Contains(out, "dropped") || !strings.Contains(out, "kept ****************") {
		t.Errorf("output: %s", pantest.Redact(out))
	}
}

func TestNoAllocOverheadOnCleanRecords(t *testing.T) {
	h := logmask.NewHandler(discard{}, nil)
	l := slog.New(h)
	allocs := testing.AllocsPerRun(200, func() {
		l.Info("request done", "status", 200, "path", "/v1/charges", "latency_ms", 31)
	})
	base := testing.AllocsPerRun(200, func() {
		slog.New(discard{}).Info("request done", "status", 200, "path", "/v1/charges", "latency_ms", 31)
	})
	if allocs > base {
		t.Errorf("masking a clean record costs %.1f allocs (bare handler %.1f)", allocs, base)
	}
}

type discard struct{}

func (discard) Enabled(context.Context, slog.Level) bool  { return true }
func (discard) Handle(context.Context, slog.Record) error { return nil }
func (d discard) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discard) WithGroup(string) slog.Handler           { return d }
