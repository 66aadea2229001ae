package pan_test

import (
	"strconv"
	"testing"

	"github.com/pcistream/pcistream/internal/pan"
)

// TestInputDoesNotEscape: Contains, Find and Mask keep their input where
// the caller put it (a stack buffer stays on the stack), so callers like
// the log handler mask clean values without allocating. (A recursive call
// between the mask helpers once made the input escape.)
func TestInputDoesNotEscape(t *testing.T) {
	d := pan.New()
	dst := make([]byte, 0, 64)
	ms := make([]pan.Match, 0, 4)
	allocs := testing.AllocsPerRun(200, func() {
		var buf [24]byte
		b := strconv.AppendInt(buf[:0], 1732361330123, 10)
		if d.Contains(b) {
			t.Fatal("a timestamp is no PAN")
		}
		ms = d.Find(ms[:0], b)
		dst, _ = d.Mask(dst[:0], b, pan.First6Last4)
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per run", allocs)
	}
}
