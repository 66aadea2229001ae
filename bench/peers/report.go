package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
)

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores visible (`nproc`), shared with other jobs; %s %s/%s; OpenJDK 17", model, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func find(rs []Result, key string) *Result {
	for i := range rs {
		if rs[i].Key == key {
			return &rs[i]
		}
	}
	return nil
}

func lat(r Result, load float64) (LatPoint, bool) {
	for _, l := range r.Latency {
		if l.Load == load {
			return l, true
		}
	}
	return LatPoint{}, false
}

func report(res *Results) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "## Masker vs Kafka Streams (exactly_once_v2) vs a plain franz-go loop, on real Apache Kafka\n\n")
	fmt.Fprintf(&sb, "Machine: %s (load average 1/5/15 min at the end of the run: %s). Broker: %s, same machine. Date: %s.\n", res.Machine, res.LoadAvg, res.Kafka, res.Date)
	fmt.Fprintf(&sb, "Command: `%s` (all contenders in one run, one after the other, same broker).\n\n", res.Command)
	fmt.Fprintf(&sb, "Input: %d log lines of about 190 bytes (timestamps, hex trace ids, order ids, amounts; one in ten carries\n", res.Records)
	fmt.Fprintf(&sb, "a test PAN, contiguous or with spaces/dashes) in a %d-partition topic, the same topic for every\n", res.Partitions)
	fmt.Fprintf(&sb, "throughput run. Each contender is its own process (the Go ones re-exec the driver; Kafka Streams is\n")
	fmt.Fprintf(&sb, "a JVM with -Xmx512m and one stream thread) and is measured from its group's first committed offset to\n")
	fmt.Fprintf(&sb, "its last, so start-up and group join are not counted. \"per core\" = records / CPU-seconds of the\n")
	fmt.Fprintf(&sb, "contender's process (from /proc/PID/stat); the broker's CPU is shown apart. Latency: a producer with\n")
	fmt.Fprintf(&sb, "linger 0 paced at 50%% and 90%% of that contender's own measured rate for %.0f s on fresh topics; each\n", res.LatencySeconds)
	fmt.Fprintf(&sb, "record's produce call to its arrival at a read_committed consumer of the output (outputs carry the\n")
	fmt.Fprintf(&sb, "input timestamp). Kafka Streams runs with its defaults besides the guarantee (EOS commit.interval.ms\n")
	fmt.Fprintf(&sb, "= 100); the masker with its defaults (a transaction per poll).\n\n")
	fmt.Fprintf(&sb, "| contender | guarantee | records/s | records per CPU-second | contender cores | broker cores | peak RSS | p50 / p99 at 50%% | p50 / p99 at 90%% |\n")
	fmt.Fprintf(&sb, "|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range res.Contenders {
		l5, _ := lat(r, 0.5)
		l9, _ := lat(r, 0.9)
		fmt.Fprintf(&sb, "| %s | %s | %.0f | %.0f | %.2f | %.2f | %.0f MB | %s | %s |\n",
			r.Name, r.Guarantee, r.PerSec, r.PerCore, r.Cores, r.BrokerCores, r.RSSMB, latCell(l5), latCell(l9))
	}
	m, s := find(res.Contenders, "masker"), find(res.Contenders, "streams-eos")
	if m != nil && s != nil {
		m5, _ := lat(*m, 0.5)
		s5, _ := lat(*s, 0.5)
		ratio := m.PerCore / s.PerCore
		fmt.Fprintf(&sb, "\nTargets: masker records per CPU-second / Kafka Streams EOS v2 = **%.1fx** (target >= 2x: %s); p99 at 50%% load\n", ratio, yes(ratio >= 2))
		fmt.Fprintf(&sb, "%.1f ms vs %.1f ms (target: lower: %s). Wall-clock records/s ratio: %.1fx.\n", m5.P99ms, s5.P99ms, yes(m5.P99ms < s5.P99ms), m.PerSec/s.PerSec)
	}
	if m, p := find(res.Contenders, "masker"), find(res.Contenders, "plain"); m != nil && p != nil {
		fmt.Fprintf(&sb, "Masker (exactly once) vs the plain at-least-once loop: %.1fx records per CPU-second.\n", m.PerCore/p.PerCore)
	}
	fmt.Fprintf(&sb, "\n")
	return sb.String()
}

func latCell(l LatPoint) string {
	ms := func(v float64) string {
		if v >= 3.6e6 {
			return "never"
		}
		if v >= 1000 {
			return fmt.Sprintf("%.1f s", v/1000)
		}
		return fmt.Sprintf("%.1f ms", v)
	}
	s := fmt.Sprintf("%s / %s (%.0f/s)", ms(l.P50ms), ms(l.P99ms), l.Achieved)
	if l.Missing > 0 {
		s += fmt.Sprintf(", %d not visible in 60 s", l.Missing)
	} else if l.Err != "" {
		s += ", failed: " + l.Err
	}
	return s
}

func yes(b bool) string {
	if b {
		return "met"
	}
	return "**not met**"
}
