package pan_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/pan"
)

// Shared by the recall tests (recall_*_test.go): the brands their cases
// are built for and the checks every masked case must pass. Failures name
// cases and print texts redacted only: they hold card numbers.

// brand is one network and PAN length a recall case is built for.
type brand struct {
	n pan.Network
	l int
}

// maskChecks masks text under every policy and checks what every recall
// case needs: want matches masked (any number above zero when want < 0),
// the length kept, none of pans readable afterwards (readable), nothing
// found again, masking idempotent, the stream masker agreeing with Mask.
// It reports whether all held.
func maskChecks(t *testing.T, d *pan.Detector, name, text string, want int, pans []string, readable func(text, pan string) bool) bool {
	t.Helper()
	ok := true
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(name+" "+format, args...)
		ok = false
	}
	for _, p := range policies {
		out, n := d.Mask(nil, []byte(text), p)
		if (want >= 0 && n != want) || (want < 0 && n == 0) || len(out) != len(text) {
			fail("%v: masked %d (want %d), length %d -> %d", p, n, want, len(text), len(out))
		}
		for i, pn := range pans {
			if readable(string(out), pn) {
				fail("%v: PAN %d still readable after masking", p, i)
			}
		}
		if left := d.Find(nil, out); len(left) != 0 {
			fail("%v: %d PANs left after masking", p, len(left))
		}
		if again, n2 := d.Mask(nil, out, p); n2 != 0 || !bytes.Equal(again, out) {
			fail("%v: masking not idempotent", p)
		}
		var sb bytes.Buffer
		if _, err := d.MaskStream(&sb, strings.NewReader(text), p); err != nil || !bytes.Equal(sb.Bytes(), out) {
			fail("%v: stream masking differs (%v)", p, err)
		}
	}
	return ok
}
