package leaktest

import "testing"

// The checker must see every planted form, or the leak tests could not fail.
func TestLeaksSeesEveryForm(t *testing.T) {
	const p = "4111111111111111"
	for _, f := range Forms(p) {
		for _, wrap := range []string{"%s", `{"v":"%s"}`, "x %s y"} {
			s := replace(wrap, f.Text)
			if !Leaks(s, p) {
				t.Errorf("form %s in %q not seen", f.Name, wrap)
			}
		}
	}
	for _, s := range []string{"411111******1111", "4111 **** **** 1111", "41111111 2 11111111"} {
		if Leaks(s, p) {
			t.Errorf("masked %q reported as a leak", s)
		}
	}
	if !HasCode(`{"cvv":"468"}`, "468") || !HasCode(`cvv%3D468`, "468") || HasCode("14689", "468") {
		t.Error("HasCode is wrong")
	}
}

func replace(wrap, s string) string {
	out := ""
	for i := 0; i < len(wrap); i++ {
		if wrap[i] == '%' && i+1 < len(wrap) && wrap[i+1] == 's' {
			out += s
			i++
			continue
		}
		out += string(wrap[i])
	}
	return out
}
