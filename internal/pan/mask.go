package pan

import "fmt"

// Policy says what a mask keeps of a PAN.
type Policy uint8

// Masking policies. Masked digits become '*'; separators and length are kept
// so downstream log parsers keep working.
const (
	// First6Last4 keeps the BIN (first six digits) and the last four, the
	// most PCI DSS allows to be displayed. For PANs shorter than 15 digits
	// the kept prefix shrinks so that at least five digits are always
	// masked (a 12-digit Maestro with 10 digits shown and a Luhn check
	// digit would leave only ten candidates).
	First6Last4 Policy = iota
	// Last4 keeps only the last four digits.
	Last4
	// Full masks every digit.
	Full
)

// minMasked is the least number of digits First6Last4 masks.
const minMasked = 5

// ParsePolicy parses "first6last4", "last4" or "full".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "first6last4":
		return First6Last4, nil
	case "last4":
		return Last4, nil
	case "full":
		return Full, nil
	}
	return 0, fmt.Errorf("unknown masking policy %q: use first6last4, last4 or full", s)
}

// String returns the policy name as ParsePolicy accepts it.
func (p Policy) String() string {
	switch p {
	case First6Last4:
		return "first6last4"
	case Last4:
		return "last4"
	case Full:
		return "full"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// Set implements pflag.Value (and flag.Value) so a Policy can be a flag.
func (p *Policy) Set(s string) error {
	v, err := ParsePolicy(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Type implements pflag.Value.
func (p *Policy) Type() string { return "policy" }

// keep returns how many leading and trailing digits a PAN of nd digits keeps.
func (p Policy) keep(nd int) (head, tail int) {
	switch p {
	case First6Last4:
		head = min(6, max(0, nd-4-minMasked))
		return head, 4
	case Last4:
		return 0, 4
	}
	return 0, 0
}

// Mask returns b with every PAN masked under p (digits replaced by '*',
// separators and length kept), appended to dst, and the number of PANs
// masked. If n == 0 the returned slice equals append(dst, b...). Masking is
// idempotent: the output never contains a PAN the detector would report.
func (d *Detector) Mask(dst, b []byte, p Policy) (out []byte, n int) {
	s := newScanner(d, b)
	var m Match
	if !s.next(&m) {
		return append(dst, b...), 0
	}
	if cap(dst)-len(dst) < len(b) {
		grown := make([]byte, len(dst), len(dst)+len(b))
		copy(grown, dst)
		dst = grown
	}
	prev := 0
	for {
		dst = append(dst, b[prev:m.Start]...)
		dst = appendMasked(dst, b[m.Start:m.End], m.Digits, p)
		prev = m.End
		n++
		if !s.next(&m) {
			break
		}
	}
	return append(dst, b[prev:]...), n
}

// MaskString is Mask for strings. It returns s itself (no allocation) when s
// holds no PAN.
func (d *Detector) MaskString(s string, p Policy) (string, int) {
	b := stringBytes(s)
	sc := newScanner(d, b)
	var m Match
	if !sc.next(&m) {
		return s, 0
	}
	out, n := d.Mask(make([]byte, 0, len(s)), b, p)
	return string(out), n
}

func appendMasked(dst, pan []byte, nd int, p Policy) []byte {
	start := len(dst)
	dst = append(dst, pan...)
	maskRange(dst[start:], nd, p)
	return dst
}

// maskRange masks the nd digits of pan in place under p.
func maskRange(pan []byte, nd int, p Policy) {
	head, tail := p.keep(nd)
	idx := 0
	for i := 0; i < len(pan); i++ {
		c := pan[i]
		if c == '%' {
			i += 2 // keep %20 / %2D separators intact
			continue
		}
		if !isDigit(c) {
			continue
		}
		if idx >= head && idx < nd-tail {
			pan[i] = '*'
		}
		idx++
	}
}
