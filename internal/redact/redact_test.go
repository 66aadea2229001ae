package redact_test

import (
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/redact"
	"github.com/pcistream/pcistream/internal/redact/leaktest"
)

const visa = "4111111111111111"

func TestTextStarsEveryFormOfAPAN(t *testing.T) {
	r := redact.New(pan.New(), pan.First6Last4)
	for _, f := range leaktest.Forms(visa) {
		for _, ctx := range []string{"%s", "card %s declined", `{"v":"%s"}`, "a=%s&b=2"} {
			in := strings.Replace(ctx, "%s", f.Text, 1)
			out := r.String(in)
			if leaktest.Leaks(out, visa) {
				t.Errorf("form %s in %q: PAN still readable: %s", f.Name, ctx, leaktest.Redact(out))
			}
		}
	}
}

func TestTextKeepsOrdinaryText(t *testing.T) {
	r := redact.New(pan.New(), pan.First6Last4)
	for _, s := range []string{
		"order 12345 for 19.99 EUR", "status=200 took 35ms", "user 42 at 10.0.0.1:8080",
		"card 411111******1111 declined",
	} {
		if got := r.String(s); got != s {
			t.Errorf("%q changed to %q", s, got)
		}
	}
}

func TestCVVLabelsInText(t *testing.T) {
	r := redact.New(pan.New(), pan.First6Last4)
	for _, s := range []string{
		"cvv2=468", `{"cvc":"468"}`, "<cvv>468</cvv>", "CVV: 468", `\"Cvv2\":\"468\"`, "security_code 468",
		"SecurityCode=468;", "cid%3D468", "card_verification_value=468", "csc 468 ok",
	} {
		if got := r.String(s); strings.Contains(got, "468") {
			t.Errorf("%q: CVV kept: %q", leaktest.Redact(s), leaktest.Redact(got))
		}
	}
	if got := r.String("order 468 shipped"); got != "order 468 shipped" {
		t.Errorf("a number without a CVV label was starred: %q", got)
	}
}

func TestClassify(t *testing.T) {
	for name, want := range map[string]redact.Class{
		"cvv": redact.CVV, "CVV2": redact.CVV, "cvc": redact.CVV, "Cvc2": redact.CVV, "cid": redact.CVV,
		"csc": redact.CVV, "security_code": redact.CVV, "SecurityCode": redact.CVV,
		"card_verification_value": redact.CVV, "X-Card-CVV": redact.CVV, "card.cvv2": redact.CVV,
		"pan": redact.PAN, "card_number": redact.PAN, "CardNumber": redact.PAN, "cc": redact.PAN,
		"track2": redact.PAN, "x-card-number": redact.PAN,
		"cardholder_name": redact.Holder, "CardHolder": redact.Holder, "name_on_card": redact.Holder,
		"merchant_id": redact.Plain, "company": redact.Plain, "japan": redact.Plain, "timespan": redact.Plain,
		"trace": redact.Plain, "amount": redact.Plain,
	} {
		if got := redact.Classify(name); got != want {
			t.Errorf("Classify(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestMapAndNestedJSON(t *testing.T) {
	r := redact.New(pan.New(), pan.First6Last4)
	in := map[string]string{
		"cvv2":         "468",
		"Card_Number":  "4111-1111-1111-1111",
		"holder":       "x",
		"CardHolder":   "Jane Q Cardholder",
		"note":         "pan " + strings.Join([]string{"4111", "1111", "1111", "1111"}, "\t"),
		"k" + visa:     "v",
		"nested":       `{"card":{"number":"` + visa + `","cvc":"468"},"items":[{"security_code":"468"},"x` + visa + `"],"amount":` + visa + `}`,
		"double":       `"{\"cvv2\":\"468\"}"`,
		"clean":        "hello",
		"escaped_json": `{"v":"\u0034\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031"}`,
	}
	out := r.Map(in)
	for k, v := range out {
		if leaktest.Leaks(k, visa) || leaktest.Leaks(v, visa) || strings.Contains(k+v, "468") || strings.Contains(k+v, "Jane") {
			t.Errorf("entry %s = %s still holds card data", leaktest.Redact(k), leaktest.Redact(v))
		}
	}
	if _, ok := out["cvv2"]; ok {
		t.Error("cvv2 key kept")
	}
	if out["clean"] != "hello" || out["holder"] != "x" {
		t.Errorf("plain entries changed: %q %q", out["clean"], out["holder"])
	}
	if out["CardHolder"] != redact.Withheld {
		t.Errorf("cardholder not withheld: %q", out["CardHolder"])
	}
}

func TestBytesAndOpaque(t *testing.T) {
	r := redact.New(pan.New(), pan.First6Last4)
	bcd := []byte{0x41, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11}
	if got := string(r.Bytes(bcd)); !strings.HasPrefix(got, "[binary value withheld") {
		t.Errorf("binary kept: %q", leaktest.Redact(got))
	}
	if got := string(r.Opaque([]byte("pan=" + visa + " cvv=468 ４１"))); strings.ContainsAny(got, "0123456789４１") {
		t.Errorf("opaque text kept digits: %q", leaktest.Redact(got))
	}
}

func TestHolderNamesWithheldInText(t *testing.T) {
	r := redact.New(pan.New(), pan.First6Last4)
	for _, s := range []string{
		`{"cardholder_name":"Jane Q Public","x":1`, `cardholder=Jane Q Public&x=1`, `<CardHolderName>Jane Q Public</CardHolderName>`,
		`{\"name_on_card\":\"Jane Q Public\"}`,
	} {
		for _, out := range []string{r.String(s), string(r.Opaque([]byte(s)))} {
			if strings.Contains(out, "Jane") {
				t.Errorf("%q: name kept: %q", leaktest.Redact(s), leaktest.Redact(out))
			}
		}
	}
}
