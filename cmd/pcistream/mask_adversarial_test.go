package main

import (
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/pan/pantest"
)

// TestMaskCmdAdversarial: `pcistream mask` masks every form of the
// adversarial table (as one input, one form per line, and each form on its
// own) under every policy, and leaves the look-alikes byte for byte.
// Failures name the form, never its text.
func TestMaskCmdAdversarial(t *testing.T) {
	cases := pantest.Adversarial()
	var all strings.Builder
	for _, c := range cases {
		all.WriteString("== " + c.Name + " ==\n" + c.Text + "\n")
	}
	for _, policy := range []string{"first6last4", "last4", "full"} {
		out, _, err := runMask(t, all.String(), "--policy", policy)
		if err != nil {
			t.Fatalf("%s: %v", policy, err)
		}
		if pan.New().ContainsString(out) {
			t.Errorf("%s: a PAN is left in the masked output", policy)
		}
		// Per-form checks on the combined output.
		blocks := strings.Split(out, "== ")
		if len(blocks) != len(cases)+1 {
			t.Fatalf("%s: output has %d forms, want %d", policy, len(blocks)-1, len(cases))
		}
		for i, c := range cases {
			got := strings.TrimSuffix(strings.TrimPrefix(blocks[i+1], c.Name+" ==\n"), "\n")
			switch {
			case c.PANs == 0 && got != c.Text:
				t.Errorf("%s %s: look-alike changed", policy, c.Name)
			case c.PANs > 0 && pantest.Leaks(got, c.PAN):
				t.Errorf("%s %s: PAN readable after masking", policy, c.Name)
			case c.PANs > 0 && got == c.Text:
				t.Errorf("%s %s: not masked", policy, c.Name)
			}
		}
	}
	for _, c := range cases {
		out, stderr, err := runMask(t, c.Text, "--stats")
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if c.PANs > 0 && (pantest.Leaks(out, c.PAN) || !strings.Contains(stderr, " PANs masked")) {
			t.Errorf("%s: not masked on its own", c.Name)
		}
		if c.PANs == 0 && out != c.Text {
			t.Errorf("%s: look-alike changed on its own", c.Name)
		}
	}
}
