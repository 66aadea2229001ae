// Package logmask is a log/slog Handler that masks PANs in everything it
// logs: the message, every attribute key and value and the attributes and
// group names added with WithAttrs and WithGroup. pcistream's own logging
// goes through it, so no error message or attribute can carry a card number
// into a log line.
//
// It masks what the next handler will print: each value is rendered the way
// that handler encodes it (MarshalJSON and error text for the JSON handler;
// MarshalText, byte slices as text, and fmt's %+v, which calls Error and
// String, for the text handler), and a value whose rendering holds a PAN is
// replaced by the masked rendering. Byte slices nested in structs, maps and
// slices, which handlers print as base64 or as lists of numbers, are walked
// and checked as text. Attributes named like a card verification code (cvv,
// cvc, security_code, ...) are withheld whatever their value.
package logmask

import (
	"bytes"
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/redact"
)

// Handler masks PANs and passes records on to the next Handler.
type Handler struct {
	next   slog.Handler
	d      *pan.Detector
	policy pan.Policy
	enc    Encoding
}

// Encoding is how the next handler prints values.
type Encoding uint8

// Encodings. Unknown checks both renderings (safe for any handler).
const (
	Unknown Encoding = iota
	Text             // slog.TextHandler
	JSON             // slog.JSONHandler
)

type cfg struct {
	policy pan.Policy
	enc    Encoding
}

// WithEncoding says how the next handler prints values (default Unknown:
// both the text and the JSON renderings are checked).
func WithEncoding(e Encoding) Opt { return func(c *cfg) { c.enc = e } }

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
	if c.enc == Unknown {
		switch next.(type) {
		case *slog.JSONHandler:
			c.enc = JSON
		case *slog.TextHandler:
			c.enc = Text
		}
	}
	return &Handler{next: next, d: d, policy: c.policy, enc: c.enc}
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
	return &Handler{next: h.next.WithAttrs(masked), d: h.d, policy: h.policy, enc: h.enc}
}

// WithGroup returns a Handler that nests attributes under name (masked).
func (h *Handler) WithGroup(name string) slog.Handler {
	name, _ = h.d.MaskString(name, h.policy)
	return &Handler{next: h.next.WithGroup(name), d: h.d, policy: h.policy, enc: h.enc}
}

func (h *Handler) str(s string) (string, bool) {
	out, n := h.d.MaskString(s, h.policy)
	return out, n > 0
}

// attr returns a with its key and value masked; the value of a CVV-like
// attribute is withheld.
func (h *Handler) attr(a slog.Attr) slog.Attr {
	a.Key, _ = h.str(a.Key)
	if a.Value.Kind() != slog.KindGroup && redact.Classify(a.Key) == redact.CVV {
		return slog.String(a.Key, redact.Withheld)
	}
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

// anyValue masks what the next handler prints for x. A value whose
// rendering holds no PAN is returned as it is, so the handler prints it
// exactly as before (JSON output keeps its structure).
func (h *Handler) anyValue(x any) slog.Value {
	if x == nil {
		return slog.AnyValue(nil)
	}
	if bs, ok := byteSlice(x); ok {
		// Text prints it as a string, JSON as base64: check the bytes.
		if !h.d.Contains(bs) {
			return slog.AnyValue(x)
		}
		out, _ := h.d.Mask(nil, bs, h.policy)
		return slog.AnyValue(out)
	}
	if nestedBytesHold(h.d, reflect.ValueOf(x), 0, map[uintptr]bool{}) {
		return slog.StringValue(fmt.Sprintf("[withheld: a byte slice in this %T holds a card number]", x))
	}
	var texts []string
	if h.enc != JSON {
		texts = append(texts, renderText(x))
	}
	if h.enc != Text {
		texts = append(texts, renderJSON(x))
	}
	for _, t := range texts {
		if !h.d.ContainsString(t) {
			continue
		}
		m, _ := h.d.MaskString(t, h.policy)
		if h.enc == JSON && json.Valid([]byte(m)) {
			return slog.AnyValue(json.RawMessage(m))
		}
		return slog.StringValue(m)
	}
	return slog.AnyValue(x)
}

// renderText is what slog.TextHandler prints for a KindAny value.
func renderText(x any) string {
	if tm, ok := x.(encoding.TextMarshaler); ok {
		b, err := tm.MarshalText()
		if err != nil {
			return "!ERROR:" + err.Error()
		}
		return string(b)
	}
	return fmt.Sprintf("%+v", x)
}

// renderJSON is what slog.JSONHandler prints for a KindAny value.
func renderJSON(x any) string {
	if err, ok := x.(error); ok {
		if _, jm := x.(json.Marshaler); !jm {
			return err.Error()
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return "!ERROR:" + err.Error()
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// byteSlice returns x's bytes when x is a []byte or a named byte slice type.
func byteSlice(x any) ([]byte, bool) {
	if bs, ok := x.([]byte); ok {
		return bs, true
	}
	v := reflect.ValueOf(x)
	if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
		return v.Bytes(), true
	}
	return nil, false
}

// maxDepth bounds the walk of nested values.
const maxDepth = 16

// nestedBytesHold reports whether a byte slice or byte array anywhere inside
// v (struct fields, exported or not, as fmt prints them; map keys and
// values; slice and array elements; pointers and interfaces) holds a PAN.
// Handlers print such bytes as base64 or as lists of numbers, where no
// detector can see the digits.
func nestedBytesHold(d *pan.Detector, v reflect.Value, depth int, seen map[uintptr]bool) bool {
	if depth > maxDepth || !v.IsValid() {
		return false
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return false
		}
		if v.Kind() == reflect.Pointer {
			if seen[v.Pointer()] {
				return false
			}
			seen[v.Pointer()] = true
		}
		return nestedBytesHold(d, v.Elem(), depth+1, seen)
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b := make([]byte, v.Len())
			for i := range b {
				b[i] = byte(v.Index(i).Uint())
			}
			return d.Contains(b)
		}
		for i := 0; i < v.Len(); i++ {
			if nestedBytesHold(d, v.Index(i), depth+1, seen) {
				return true
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if nestedBytesHold(d, it.Key(), depth+1, seen) || nestedBytesHold(d, it.Value(), depth+1, seen) {
				return true
			}
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if nestedBytesHold(d, v.Field(i), depth+1, seen) {
				return true
			}
		}
	}
	return false
}
