package pan

import "testing"

// TestPANAfterWordEndingInDigit: a PAN separated by a space from a word that
// ends in a digit ("id42", "line2") is found. Avro makes this common: a
// 16-byte string's length prefix is 0x20, a space.
func TestPANAfterWordEndingInDigit(t *testing.T) {
	d := New()
	for _, s := range []string{
		"id42 4111111111111111",
		"line2 4111111111111111 x",
		"merchant-03 5555555555554444",
	} {
		if got := len(d.FindString(nil, s)); got != 1 {
			m, _ := d.MaskString(s, Full)
			t.Errorf("%q: %d matches, want 1", m, got)
		}
	}
	// A grouped PAN after such a word stays ambiguous with an IBAN
	// ("DE89 3704 ..."): IBANs win, so "a1 4111 1111 1111 1111" is not
	// reported. IBANs stay negatives.
	for _, s := range []string{"DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32"} {
		if got := len(d.FindString(nil, s)); got != 0 {
			t.Errorf("%q: %d matches, want 0", s, got)
		}
	}
}
