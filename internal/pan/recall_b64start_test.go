package pan_test

import (
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/pan/pantest"
)

// TestBase64GroupBeforeTheDigits: a PAN whose first digits share a base64
// group with the byte before them ("[4111..." in JSON) is found whatever
// that group looks like: the scan used to start the decoded region after
// a candidate that led nowhere, inside that group, and lost the first
// digits. Every network and length, each in standard and URL-safe base64.
func TestBase64GroupBeforeTheDigits(t *testing.T) {
	d := pan.New()
	r := rand.New(rand.NewPCG(1, 2))
	missed, total := map[string]int{}, 0
	for _, n := range pan.Networks() {
		for _, l := range pantest.Lengths(n) {
			for range 100 {
				digits := string(pantest.Generate(r, n, l))
				for _, deco := range []string{"[", "<n>", "x", ""} {
					j, _ := json.Marshal(map[string]string{"card": deco + digits, "sub": "42"})
					for _, enc := range []string{base64.StdEncoding.EncodeToString(j), base64.RawURLEncoding.EncodeToString(j)} {
						total++
						text := `{"blob":"` + enc + `"}`
						if !d.ContainsString(text) {
							missed[n.String()]++
							continue
						}
						for _, p := range policies {
							out, _ := d.MaskString(text, p)
							if len(d.FindString(nil, out)) != 0 {
								t.Errorf("%v length %d after %q %v: a PAN is left after masking", n, l, deco, p)
							}
						}
					}
				}
			}
		}
	}
	if len(missed) > 0 {
		t.Errorf("missed in base64 (of %d): %v", total, missed)
	}
}
