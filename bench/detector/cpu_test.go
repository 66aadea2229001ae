package detector

import (
	"regexp"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/pcistream/pcistream/internal/pan"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestCPURates(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	d := pan.New()
	re := regexp.MustCompile(RegexpPattern)
	for _, c := range corpora() {
		var ms []pan.Match
		t0 := cpuTime()
		for range 5 {
			ms = d.Find(ms[:0], c.data)
		}
		dt := cpuTime() - t0
		t1 := cpuTime()
		regexpLuhn(re, c.data)
		rt := cpuTime() - t1
		det := float64(5*len(c.data)) / dt.Seconds() / 1e6
		rx := float64(len(c.data)) / rt.Seconds() / 1e6
		t.Logf("%s: detector %.0f MB/s cpu, regexp %.1f MB/s cpu, ratio %.1f", c.name, det, rx, det/rx)
	}
}
