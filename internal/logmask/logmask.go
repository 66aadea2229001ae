// Package logmask is a log/slog Handler that masks PANs in everything it
// logs: the message, every attribute key and value (strings, numbers,
// errors, Stringers, TextMarshalers, byte slices, groups, LogValuers and any
// other value through its fmt and JSON forms) and the attributes and group
// names added with WithAttrs and WithGroup. pcistream's own logging goes
// through it, so no error message or attribute can carry a card number into
// a log line.
package logmask

import (
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"

	"github.com/pcistream/pcistream/internal/pan"
)

// Handler masks PANs and passes records on to the next Handler.
type Handler struct {
	next   slog.Handler
	d      *pan.Detector
	policy pan.Policy
}

type cfg struct {
	policy pan.Policy
}

// Opt configures a Handler.
type Opt func(*cfg)

// WithPolicy sets the masking policy (default pan.First6Last4).
func WithPolicy(p pan.Policy) Opt { return func(c *cfg) { c.policy = p } }

// NewHandler wraps next. A nil d uses pan.New().
func NewHandler(next slog.Handler, d *pan.Detector, opts ...Opt) *Handler {
	c := cfg{policy: pan.First6Last4}
	for _, o := range opts {
		o(&c)
	}
	if d == nil {
		d = pan.New()
	}
	return &Handler{next: next, d: d, policy: c.policy}
}

// New returns a logger writing text (or JSON if json is set) to w at level,
// with PANs masked.
func New(w io.Writer, level slog.Leveler, json bool) *slog.Logger {
	ho := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if json {
		h = slog.NewJSONHandler(w, ho)
	} else {
		h = slog.NewTextHandler(w, ho)
	}
	return slog.New(NewHandler(h, nil))
}

// Enabled reports whether the next handler handles level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle masks r and passes it on.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	msg, _ := h.d.MaskString(r.Message, h.policy)
	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs masks attrs and returns a Handler that adds them to every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		masked[i] = h.attr(a)
	}
	return &Handler{next: h.next.WithAttrs(masked), d: h.d, policy: h.policy}
}

// WithGroup returns a Handler that nests attributes under name (masked).
func (h *Handler) WithGroup(name string) slog.Handler {
	name, _ = h.d.MaskString(name, h.policy)
	return &Handler{next: h.next.WithGroup(name), d: h.d, policy: h.policy}
}

func (h *Handler) str(s string) (string, bool) {
	out, n := h.d.MaskString(s, h.policy)
	return out, n > 0
}

// attr returns a with its key and value masked.
func (h *Handler) attr(a slog.Attr) slog.Attr {
	a.Key, _ = h.str(a.Key)
	a.Value = h.value(a.Value)
	return a
}

func (h *Handler) value(v slog.Value) slog.Value {
	v = v.Resolve() // LogValuers
	switch v.Kind() {
	case slog.KindString:
		if s, ok := h.str(v.String()); ok {
			return slog.StringValue(s)
		}
	case slog.KindInt64:
		var buf [24]byte
		if s, ok := h.digits(strconv.AppendInt(buf[:0], v.Int64(), 10)); ok {
			return slog.StringValue(s)
		}
	case slog.KindUint64:
		var buf [24]byte
		if s, ok := h.digits(strconv.AppendUint(buf[:0], v.Uint64(), 10)); ok {
			return slog.StringValue(s)
		}
	case slog.KindFloat64:
		// A PAN below 2^53 survives as a float64 and a JSON handler may
		// print it as an integer.
		if f := v.Float64(); f == math.Trunc(f) && math.Abs(f) < 1e20 {
			var buf [32]byte
			if s, ok := h.digits(strconv.AppendFloat(buf[:0], f, 'f', 0, 64)); ok {
				return slog.StringValue(s)
			}
		}
	case slog.KindGroup:
		as := v.Group()
		masked := make([]slog.Attr, len(as))
		for i, a := range as {
			masked[i] = h.attr(a)
		}
		return slog.GroupValue(masked...)
	case slog.KindAny:
		return h.anyValue(v.Any())
	}
	return v
}

// digits masks a rendered number.
func (h *Handler) digits(b []byte) (string, bool) {
	if !h.d.Contains(b) {
		return "", false
	}
	out, _ := h.d.Mask(nil, b, h.policy)
	return string(out), true
}

// anyValue masks the forms handlers print: error and Stringer text,
// TextMarshaler output, byte slices, and for everything else both the
// fmt (%+v, TextHandler) and JSON (JSONHandler) forms. A value with a PAN in
// any form becomes its masked text; a clean value is kept as is, so JSON
// output keeps its structure.
func (h *Handler) anyValue(x any) slog.Value {
	switch t := x.(type) {
	case nil:
		return slog.AnyValue(nil)
	case error:
		s, _ := h.str(t.Error())
		return slog.StringValue(s)
	case []byte:
		if !h.d.Contains(t) {
			return slog.AnyValue(t)
		}
		out, _ := h.d.Mask(nil, t, h.policy)
		return slog.AnyValue(out)
	case encoding.TextMarshaler:
		b, err := t.MarshalText()
		if err != nil {
			s, _ := h.str(fmt.Sprintf("!ERROR:%v", err))
			return slog.StringValue(s)
		}
		if h.d.Contains(b) {
			out, _ := h.d.Mask(nil, b, h.policy)
			return slog.StringValue(string(out))
		}
		return slog.AnyValue(x)
	case fmt.Stringer:
		s, _ := h.str(t.String())
		return slog.StringValue(s)
	}
	text := fmt.Sprintf("%+v", x)
	if m, ok := h.str(text); ok {
		return slog.StringValue(m)
	}
	if j, err := json.Marshal(x); err == nil && h.d.Contains(j) {
		out, _ := h.d.Mask(nil, j, h.policy)
		return slog.StringValue(string(out))
	}
	return slog.AnyValue(x)
}
