package detector

import (
	"bytes"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pcistream/pcistream/internal/pan"
)

// corpusSize is the size of each benchmark corpus: larger than L2, like a
// real stream, small enough to generate quickly.
const corpusSize = 4 << 20

var corpora = sync.OnceValue(func() []namedCorpus {
	clean, _ := Corpus(corpusSize, 0, 1)
	withPANs, n := Corpus(corpusSize, 1024, 2)
	prose := ProseCorpus(corpusSize, 3)
	return []namedCorpus{{"pan-free", clean, 0}, {"1-pan-per-KB", withPANs, n}, {"prose-pan-free", prose, 0}}
})

type namedCorpus struct {
	name string
	data []byte
	pans int
}

// regexpLuhn counts the regexp's matches whose digits pass Luhn.
func regexpLuhn(re *regexp.Regexp, data []byte) int {
	n := 0
	var digits []byte
	for _, loc := range re.FindAllIndex(data, -1) {
		digits = digits[:0]
		for _, c := range data[loc[0]:loc[1]] {
			if c >= '0' && c <= '9' {
				digits = append(digits, c)
			}
		}
		if pan.Luhn(digits) {
			n++
		}
	}
	return n
}

func TestCorpus(t *testing.T) {
	d := pan.New()
	for _, c := range corpora() {
		got := len(d.Find(nil, c.data))
		if got != c.pans {
			t.Errorf("%s: detector found %d PANs, corpus has %d", c.name, got, c.pans)
		}
		if c.pans == 0 && got != 0 {
			t.Errorf("pan-free corpus has %d PANs", got)
		}
		t.Logf("%s: %d bytes, %d PANs (detector); regexp+Luhn reports %d", c.name, len(c.data), got, regexpLuhn(regexp.MustCompile(RegexpPattern), c.data))
	}
	if _, n := Corpus(corpusSize, 1024, 2); n < corpusSize/1024*9/10 {
		t.Errorf("only %d PANs in the 1-per-KB corpus", n)
	}
}

// processCPU returns the CPU time (user + system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuRate runs body b.N times (b.Loop) and also reports the throughput per
// CPU-second of the whole process ("cpu-MB/s"): on a shared machine the
// wall-clock MB/s depends on how much CPU the benchmark got, the CPU rate
// much less.
func cpuRate(b *testing.B, size int, body func()) {
	b.SetBytes(int64(size))
	t0 := processCPU()
	n := 0
	for b.Loop() {
		body()
		n++
	}
	if cpu := processCPU() - t0; cpu > 0 {
		b.ReportMetric(float64(n*size)/1e6/cpu.Seconds(), "cpu-MB/s")
	}
}

func BenchmarkDetector(b *testing.B) {
	d := pan.New()
	for _, c := range corpora() {
		b.Run(c.name, func(b *testing.B) {
			ms := make([]pan.Match, 0, c.pans+1)
			cpuRate(b, len(c.data), func() { ms = d.Find(ms[:0], c.data) })
			if len(ms) != c.pans {
				b.Fatalf("found %d, want %d", len(ms), c.pans)
			}
		})
	}
}

func BenchmarkDetectorMask(b *testing.B) {
	d := pan.New()
	for _, c := range corpora() {
		b.Run(c.name, func(b *testing.B) {
			dst := make([]byte, 0, len(c.data))
			cpuRate(b, len(c.data), func() { dst, _ = d.Mask(dst[:0], c.data, pan.First6Last4) })
		})
	}
}

func BenchmarkRegexp(b *testing.B) {
	re := regexp.MustCompile(RegexpPattern)
	for _, c := range corpora() {
		b.Run(c.name, func(b *testing.B) {
			cpuRate(b, len(c.data), func() { regexpLuhn(re, c.data) })
		})
	}
}

// BenchmarkDetectorLongRun: one 1 MiB line of one-digit groups ("1 1 1
// ..."), the worst shape for the run checks (every position a candidate
// run that may hold a PAN printed one digit per group). It was quadratic
// (93 s for this line) until quickRun stopped walking a run it had
// decided; it is linear now, if slow (about 4 MB/s: every window of the
// line is tried).
func BenchmarkDetectorLongRun(b *testing.B) {
	d := pan.New()
	data := bytes.Repeat([]byte("1 "), 1<<19)
	cpuRate(b, len(data), func() { d.Find(nil, data) })
}
