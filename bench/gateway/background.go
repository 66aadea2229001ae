package main

import (
	"context"
	"syscall"
	"time"
)

// burn keeps about cores of CPU busy until ctx ends, in 200 µs bursts from
// four goroutines: the kind of load other processes put on a shared
// machine. Measuring the no-op route with and without it shows how much of
// a latency tail is waiting for a CPU rather than work of the gateway's own.
func burn(ctx context.Context, cores float64) {
	const workers, burst = 4, 200 * time.Microsecond
	period := time.Duration(float64(burst) * workers / cores)
	for range workers {
		go func() {
			next := time.Now()
			for ctx.Err() == nil {
				for start := time.Now(); time.Since(start) < burst; {
				}
				// A worker that fell behind (descheduled) starts a new
				// schedule rather than burning to catch up.
				if next = next.Add(period); next.Before(time.Now()) {
					next = time.Now()
				}
				time.Sleep(time.Until(next))
			}
		}()
	}
}

// selfCPU is the CPU time this process has used (user and system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
