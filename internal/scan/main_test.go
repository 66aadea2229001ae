package scan_test

import (
	"crypto/rand"
	"encoding/hex"
	"math/big"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/scan"
)

// stack is the one embedded stack of this test package (versitygw allows one
// gateway per process).
var stack *devstack.Stack

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }

var det = pan.New()

// genPAN returns a random Luhn-valid card number of length n starting with
// prefix. Tests never print it: only its last four digits.
func genPAN(t testing.TB, prefix string, n int) string {
	t.Helper()
	for {
		b := []byte(prefix)
		for len(b) < n-1 {
			d, _ := rand.Int(rand.Reader, big.NewInt(10))
			b = append(b, byte('0'+d.Int64()))
		}
		for c := byte('0'); c <= '9'; c++ {
			cand := append(append([]byte(nil), b...), c)
			if pan.Luhn(cand) {
				if _, ok := pan.Identify(cand); ok {
					return string(cand)
				}
			}
		}
	}
}

func visa(t testing.TB) string { return genPAN(t, "4", 16) }
func mc(t testing.TB) string   { return genPAN(t, "51", 16) }
func amex(t testing.TB) string { return genPAN(t, "37", 15) }

func last4(p string) string { return p[len(p)-4:] }

// uniq returns a short random suffix for names.
func uniq() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// collector gathers reported findings.
type collector struct {
	mu sync.Mutex
	fs []scan.Finding
}

func (c *collector) add(f scan.Finding) {
	c.mu.Lock()
	c.fs = append(c.fs, f)
	c.mu.Unlock()
}

// keys returns "location|last4" for every PAN finding and "location" with the
// kind for others, sorted.
func (c *collector) keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ks []string
	for _, f := range c.fs {
		if f.Kind == scan.KindPAN {
			ks = append(ks, f.Location+"|"+f.Last4)
		} else {
			ks = append(ks, string(f.Kind)+":"+f.Location)
		}
	}
	sort.Strings(ks)
	return ks
}

// assertKeys compares sets of finding keys. Keys hold at most last-4 digits,
// so printing them is safe.
func assertKeys(t *testing.T, got, want []string) {
	t.Helper()
	want = append([]string(nil), want...)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings differ\n got (%d):\n  %s\nwant (%d):\n  %s", len(got), strings.Join(got, "\n  "), len(want), strings.Join(want, "\n  "))
	}
}

// assertNoPAN fails if out contains any of the planted PANs (without
// printing them) or anything the detector flags.
func assertNoPAN(t *testing.T, what string, out []byte, pans ...string) {
	t.Helper()
	for _, p := range pans {
		if strings.Contains(string(out), p) {
			t.Errorf("%s contains a full planted PAN ending %s", what, last4(p))
		}
	}
	if ms := det.Find(nil, out); len(ms) > 0 {
		t.Errorf("%s contains %d detectable PAN(s), first ending %s", what, len(ms), string(ms[0].Last4[:]))
	}
}
