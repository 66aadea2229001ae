//go:build hyperscan

package detector

import (
	"testing"

	"github.com/pcistream/pcistream/internal/pan"
)

// hyperscanLuhn counts Hyperscan matches whose digits pass Luhn. Hyperscan
// reports every match end (overlapping ones too) but, for this pattern, no
// start, so for each end the 13 to 16 digits before it (across spaces and
// dashes, as the pattern allows) are collected and the lengths 13..16 tried
// with Luhn: the work a Hyperscan-based PAN finder has to do.
func hyperscanLuhn(h *Hyperscan, data []byte) (int, error) {
	n := 0
	var buf [16]byte
	err := h.Scan(data, func(_, to int) {
		// Collect up to 16 digits backwards from the match end.
		k := 0
		for p := to - 1; p >= 0 && k < len(buf); p-- {
			c := data[p]
			if c >= '0' && c <= '9' {
				k++
				buf[len(buf)-k] = c
			} else if c != ' ' && c != '-' {
				break
			}
		}
		for l := 13; l <= k; l++ {
			if pan.Luhn(buf[len(buf)-l:]) {
				n++
				break
			}
		}
	})
	return n, err
}

func TestHyperscan(t *testing.T) {
	h, err := NewHyperscan(RegexpPattern)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, c := range corpora() {
		n, err := hyperscanLuhn(h, c.data)
		if err != nil {
			t.Fatal(err)
		}
		ends := 0
		if err := h.Scan(c.data, func(int, int) { ends++ }); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: hyperscan reports %d match ends, %d pass Luhn (corpus has %d PANs)", c.name, ends, n, c.pans)
	}
}

func BenchmarkHyperscan(b *testing.B) {
	h, err := NewHyperscan(RegexpPattern)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	for _, c := range corpora() {
		b.Run(c.name, func(b *testing.B) {
			cpuRate(b, len(c.data), func() {
				if _, err := hyperscanLuhn(h, c.data); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
