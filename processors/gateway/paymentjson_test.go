package gateway

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// The hand-written payment decoder is checked against the encoding/json
// path it replaced (decodeJSON: Decoder, DisallowUnknownFields, one value):
// the same answer for every input, the same values when both accept, and
// for inputs with a key given twice (which only the new decoder rejects)
// the same syntax errors and otherwise a rejection.

const testBody = `{"payment_id":"p-1","event_type":"AUTHORIZATION","pan":"4111111111111111","expiry_month":12,"expiry_year":2030,"cvv":"123","cardholder_name":"Jane Q Cardholder","amount_minor":1999,"currency":"EUR","merchant_id":"m-1","metadata":{"order":"o-1"}}`

// payloadSeeds are the table's inputs and the fuzzer's seeds.
var payloadSeeds = []string{
	testBody,
	` ` + testBody + "\n\t\r ",
	`{}`, `null`, `nullx`, `{} {}`, `{}}`, `{}]`, `{},`, ``, ` `, `{`, `{"`, `{"pan"`, `{"pan":`, `{"pan":"41`,
	`[]`, `[1,2]`, `"str"`, `12`, `12x`, `01`, `-`, `true`, `tru`, `trux`, `false`, `nul`, "\ufeff{}",
	`{"pan":"4111111111111111",}`, `{,}`, `{"a" 1}`, `{"a":}`, `{"a":1 "b":2}`, `{'pan':1}`, `{pan:1}`,
	`{"color":"red"}`, `{"4111111111111111":1}`, `{"a\"b":1}`, `{"\u0070an":"4111111111111111"}`,
	`{"PAN":"4111111111111111"}`, `{"Payment_ID":"x"}`, `{"payment_ıd":"x"}`, `{"pan\u0000":"x"}`,
	`{"pan":"4111111111111111","pan":"5555555555554444"}`, `{"pan":"1","PAN":"2"}`, `{"pan":null,"pan":"x"}`,
	`{"metadata":{"a":"1","a":"2"}}`, `{"metadata":{"a":"1"},"metadata":{"b":"2"}}`,
	`{"amount_minor":"12"}`, `{"amount_minor":12.5}`, `{"amount_minor":1e2}`, `{"amount_minor":-0}`,
	`{"amount_minor":9223372036854775807}`, `{"amount_minor":9223372036854775808}`, `{"amount_minor":-9223372036854775808}`,
	`{"amount_minor":-9223372036854775809}`, `{"amount_minor":123456789012345678901234567890}`,
	`{"expiry_month":2147483647}`, `{"expiry_month":2147483648}`, `{"expiry_month":-2147483648}`, `{"expiry_month":-2147483649}`,
	`{"expiry_month":41111111111111110000}`, `{"expiry_month":null}`, `{"expiry_month":true}`, `{"expiry_month":[1]}`,
	`{"expiry_month":{"a":1}}`, `{"occurred_at":null}`, `{"occurred_at":-5}`, `{"occurred_at":1.0}`,
	`{"pan":4111111111111111}`, `{"pan":null}`, `{"pan":true}`, `{"pan":["4111111111111111"]}`, `{"pan":{}}`,
	`{"cvv":null}`, `{"cvv":123}`, `{"cardholder_name":"Jos\u00e9"}`, `{"cardholder_name":"José"}`,
	"{\"cardholder_name\":\"\xff\xfe\"}", `{"cardholder_name":"\ud800"}`, `{"cardholder_name":"\ud83d\ude00"}`,
	`{"cardholder_name":"a\tb"}`, "{\"cardholder_name\":\"a\tb\"}", `{"cardholder_name":"\x"}`, `{"cardholder_name":"\u12"}`,
	`{"cardholder_name":"\/\b\f\n\r\t\\\""}`, `{"metadata":null}`, `{"metadata":{}}`, `{"metadata":[]}`, `{"metadata":"x"}`,
	`{"metadata":{"a":null}}`, `{"metadata":{"a":1}}`, `{"metadata":{"a":{"b":1}}}`, `{"metadata":{"a":"b",}}`,
	`{"metadata":{"":"x"}}`, `{"metadata":{"k\u00e9":"v"}}`, `{"x":[1,{"y":[true,false,null,"s",-1.5e+3]}]}`,
	`{"x":[1,]}`, `{"x":[,1]}`, `{"x":{"a":1,}}`, `{"x":1.}`, `{"x":1.e5}`, `{"x":1e}`, `{"x":1e+}`, `{"x":-a}`,
	`{"x":00}`, `{"x":"` + "\x01" + `"}`, `{"color":1,"amount_minor":"x"}`, `{"amount_minor":"x","color":1}`,
	`{"amount_minor":"x","pan":` + "\x01" + `}`, `{"color":1,"x":[}`, `{"payment_id":"a","payment_id":1}`,
	`{"cvv":"1","Cvv":"2","color":1}`, `{"color":1,"cvv":"1","Cvv":"2"}`,
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	`{"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
	`{"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
	`{"metadata":{"a":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}}`,
	`{"metadata":{"a":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}}`,
}

// referenceDecode is the encoding/json path.
func referenceDecode(body []byte) (paymentRequest, *apiError) {
	var q paymentRequest
	e := decodeJSON(body, &q)
	return q, e
}

// hasDuplicateKey reports a field given twice (under any spelling
// encoding/json matches) or a metadata key given twice, read with
// encoding/json's tokenizer.
func hasDuplicateKey(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		obj, wantKey bool
		seen         map[string]bool
		kind         string // "top", "metadata" or "" (not checked)
		key          string
	}
	var stack []*frame
	fieldName := func(k string) string {
		for _, n := range payFields {
			if strings.EqualFold(k, n) {
				return n
			}
		}
		return ""
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].obj {
					stack[len(stack)-1].wantKey = true
				}
				continue
			}
			k := tok.(string)
			top.key, top.wantKey = k, false
			name := k
			switch top.kind {
			case "top":
				name = fieldName(k)
			case "":
				continue
			}
			if name != "" && top.seen[name] {
				return true
			}
			top.seen[name] = true
			continue
		}
		// A value (or the end of an array).
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				f := &frame{obj: d == '{', wantKey: d == '{', seen: map[string]bool{}}
				switch {
				case top == nil && d == '{':
					f.kind = "top"
				case top != nil && top.kind == "top" && d == '{' && fieldName(top.key) == "metadata":
					f.kind = "metadata"
				}
				stack = append(stack, f)
				continue
			case ']':
				stack = stack[:len(stack)-1]
			}
		}
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].wantKey = true
		}
	}
}

// checkSame fails t when decodePayment and the encoding/json path disagree
// on body. It prints no input (they hold test PANs).
func checkSame(t *testing.T, i int, body []byte) {
	t.Helper()
	want, wantErr := referenceDecode(body)
	var got paymentRequest
	gotErr := decodePayment(body, &got)
	if hasDuplicateKey(body) {
		switch {
		case wantErr != nil && wantErr.Code == "malformed_json":
			if gotErr == nil || *gotErr != *wantErr {
				t.Errorf("input %d (%d bytes, duplicate key): got %v, want %v", i, len(body), gotErr, wantErr)
			}
		case gotErr == nil:
			t.Errorf("input %d (%d bytes): a duplicate key was accepted", i, len(body))
		case gotErr.Message != "duplicate key" && (wantErr == nil || *gotErr != *wantErr):
			t.Errorf("input %d (%d bytes, duplicate key): got %v, want %v or a duplicate key", i, len(body), gotErr, wantErr)
		}
		return
	}
	switch {
	case (gotErr == nil) != (wantErr == nil) || gotErr != nil && *gotErr != *wantErr:
		t.Errorf("input %d (%d bytes): got %v, want %v", i, len(body), gotErr, wantErr)
	case gotErr == nil && !reflect.DeepEqual(got, want):
		t.Errorf("input %d (%d bytes): decoded values differ", i, len(body))
	}
}

func TestDecodePaymentMatchesEncodingJSON(t *testing.T) {
	for i, s := range payloadSeeds {
		checkSame(t, i, []byte(s))
	}
}

func FuzzDecodePayment(f *testing.F) {
	for _, s := range payloadSeeds {
		if len(s) < 1000 {
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkSame(t, 0, body)
		var q paymentRequest
		if e := decodePayment(body, &q); e != nil && hasCardLikeDigits(e.Message+" "+e.Field) {
			t.Errorf("an error holds a run of 12 or more digits")
		}
	})
}

func hasCardLikeDigits(s string) bool {
	run := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			if run++; run >= 12 {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

func TestDecodePaymentDuplicateKeys(t *testing.T) {
	for _, c := range []struct{ body, field string }{
		{`{"pan":"4111111111111111","pan":"5555555555554444"}`, "pan"},
		{`{"pan":"4111111111111111","PAN":"5555555555554444"}`, "pan"},
		{`{"amount_minor":1,"amount_minor":2}`, "amount_minor"},
		{`{"metadata":{"a":"1","a":"2"}}`, "metadata"},
		{`{"metadata":{"a":"1"},"metadata":{"b":"2"}}`, "metadata"},
	} {
		var q paymentRequest
		e := decodePayment([]byte(c.body), &q)
		if e == nil || e.Code != "schema_violation" || e.Field != c.field || e.Message != "duplicate key" {
			t.Errorf("%s: got %v, want a duplicate key in %s", c.field, e, c.field)
		}
	}
	// The first error in the document wins, as for the other errors.
	var q paymentRequest
	if e := decodePayment([]byte(`{"amount_minor":"1","pan":"1","pan":"2"}`), &q); e == nil || e.Field != "amount_minor" {
		t.Errorf("got %v, want the earlier type error", e)
	}
	// A later syntax error wins over a duplicate.
	if e := decodePayment([]byte(`{"pan":"1","pan":"2",}`), &q); e == nil || e.Code != "malformed_json" {
		t.Errorf("got %v, want the syntax error", e)
	}
}

func TestDecodePaymentErrorsHoldNoCardData(t *testing.T) {
	pan := "4111111111111111"
	for _, body := range []string{
		`{"` + pan + `":1}`, `{"pan":` + pan + `}`, `{"expiry_month":` + pan + `}`, `{"amount_minor":` + pan + `0000000}`,
		`{"pan":"` + pan + `"` + pan + `}`, `{"metadata":{"` + pan + `":1}}`, `{"metadata":{"` + pan + `":"a","` + pan + `":"b"}}`,
		`{"pan":"` + pan + `","pan":"` + pan + `"}`, `{"x":"` + pan + `", "` + pan + `":2}`,
	} {
		var q paymentRequest
		e := decodePayment([]byte(body), &q)
		if e == nil {
			t.Errorf("a body of %d bytes was accepted", len(body))
			continue
		}
		if strings.Contains(e.Message+e.Field, pan) || hasCardLikeDigits(e.Message+" "+e.Field) {
			t.Errorf("error %q (field %q) holds card digits", e.Code, safeField(e.Field))
		}
	}
}

func TestDecodePaymentSizeLimitUnchanged(t *testing.T) {
	// The size limit is checked before decoding, on the bytes read.
	if _, e := readJSON(httptest.NewRequest("POST", "/v1/payments", strings.NewReader(strings.Repeat(" ", 100)+`{}`)), 64, nil); e == nil || e.Code != "body_too_large" {
		t.Errorf("got %v, want body_too_large", e)
	}
}

func BenchmarkDecodePayment(b *testing.B) {
	body := []byte(testBody)
	b.Run("handwritten", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var q paymentRequest
			if e := decodePayment(body, &q); e != nil {
				b.Fatal(e)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var q paymentRequest
			if e := decodeJSON(body, &q); e != nil {
				b.Fatal(e)
			}
		}
	})
}
