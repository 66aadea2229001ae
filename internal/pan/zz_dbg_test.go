package pan_test

import (
	"math/rand/v2"
	"testing"

	"github.com/pcistream/pcistream/internal/pan"
)

func TestDbgNested(t *testing.T) {
	d := pan.New()
	r := rand.New(rand.NewPCG(1, 2))
	miss := map[int]int{}
	tot := map[int]int{}
	sepMiss := map[string]int{}
	for range 3000 {
		text, _, class, ascii := attackPANASCII(r)
		if !ascii || class != "common" {
			continue
		}
		for k := 0; k < 6; k++ {
			rr := rand.New(rand.NewPCG(uint64(k), 0))
			_ = rr
			s := containNestedK(k, text)
			tot[k]++
			if !d.ContainsString(s) {
				miss[k]++
				if k == 2 {
					sepMiss[redactSeps(text)]++
				}
			}
		}
	}
	t.Logf("miss %v of %v", miss, tot)
	n := 0
	for k, v := range sepMiss {
		if n++; n < 25 {
			t.Logf("%q %d", k, v)
		}
	}
}

func redactSeps(s string) string {
	out := []byte{}
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			if len(out) == 0 || out[len(out)-1] != '#' {
				out = append(out, '#')
			}
			continue
		}
		out = append(out, s[i])
	}
	return string(out)
}
