// Command reliability runs pcistream's reliability scenarios against real
// processes: `pcistream dev --data-dir` on free ports and masker, tokenizer
// and auditor workers as child processes of a built pcistream binary. It
// SIGKILLs masker and tokenizer workers, storms the group with joins and
// leaves, SIGKILLs and SIGTERMs the broker and restarts it on its data dir,
// hangs (SIGSTOP) and crashes (SIGKILL, restart) the auditor's S3 (a MinIO
// process), and checks that nothing was lost, duplicated or leaked. It
// writes a table to bench/RELIABILITY.md.
//
//	go run ./bench/reliability              # long mode: 200,000 events, 20 kills
//	go run ./bench/reliability -short       # the mode `go test` runs
//	go run ./bench/reliability -scenarios tokenizer-kill,s3   # a subset (own section)
//	go run ./bench/reliability -broker kafka -short           # on a real Apache Kafka broker
//
// -broker kafka (or PCISTREAM_TEST_BROKER=kafka) starts a real Apache Kafka
// 4.x broker (package kafkabroker; needs Java) that the broker-fault
// scenarios kill and restart; the dev stack then serves the registry and S3.
// RELIABILITY_BROKERS=host:port runs the worker scenarios against an
// external Kafka instead (the broker-restart scenarios are skipped). The S3
// scenarios need a MinIO binary (PATH or $GOPATH/bin) and are skipped
// without one.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pcistream/pcistream/internal/miniotest"
)

// selected reports whether scenario name is in the comma-separated list
// (empty: all); an entry selects every scenario whose name contains it.
func selected(list, name string) bool {
	if list == "" {
		return true
	}
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" && strings.Contains(name, s) {
			return true
		}
	}
	return false
}

func main() {
	short := flag.Bool("short", false, "the short mode (what go test runs)")
	events := flag.Int("events", 0, "events per scenario (default 200000, short 3000)")
	rate := flag.Int("rate", 0, "offered events/s (default 3000, short 1000)")
	kills := flag.Int("kills", 0, "worker SIGKILLs (default 20, short 3)")
	out := flag.String("out", "bench/RELIABILITY.md", "report file (its reliability section is replaced)")
	bin := flag.String("bin", "", "pcistream binary (default: go build ./cmd/pcistream)")
	only := flag.String("scenarios", "", "comma-separated scenarios to run (kill, storm, tokenizer-kill, broker-sigkill, broker-sigterm, s3-hung, s3-stopped; a name part selects all it is in); default all; the clean baseline always runs")
	broker := flag.String("broker", os.Getenv("PCISTREAM_TEST_BROKER"), "kfake (the dev stack's, default) or kafka (a real Apache Kafka 4.x broker, package kafkabroker; needs Java); default $PCISTREAM_TEST_BROKER")
	keep := flag.Bool("keep", false, "keep the run directory (worker and broker logs) when the run passes too")
	flag.Parse()
	p := defaults(*short)
	if *events > 0 {
		p.events = *events
	}
	if *rate > 0 {
		p.rate = *rate
	}
	if *kills > 0 {
		p.kills = *kills
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pcistream-reliability-")
	if err != nil {
		fail(err)
	}
	p.dir = dir
	p.bin, p.only = *bin, *only
	if p.bin == "" {
		if p.bin, err = build(dir); err != nil {
			fail(err)
		}
	}
	p.log = func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	switch *broker {
	case "", "kfake":
	case "kafka":
		if p.external != "" {
			fail(fmt.Errorf("-broker kafka and RELIABILITY_BROKERS=%s: pick one", p.external))
		}
		if err := startRealKafka(ctx, &p); err != nil {
			fail(err)
		}
		defer p.kafka.Stop() //nolint:errcheck
	default:
		fail(fmt.Errorf("-broker %q: use kfake or kafka", *broker))
	}
	rows := runAll(ctx, p)
	md := report(p, rows, strings.TrimSpace("go run ./bench/reliability "+strings.Join(os.Args[1:], " ")))
	fmt.Print(md)
	if err := writeSection(*out, md); err != nil {
		fail(err)
	}
	if p.kafka != nil {
		p.kafka.Stop() //nolint:errcheck // os.Exit below skips deferred calls
	}
	for _, r := range rows {
		if r.err != nil || r.t.lost+r.t.dup+r.t.leaked+r.t.auditDup > 0 || len(r.exits) > 0 {
			fmt.Fprintln(os.Stderr, "reliability: failures; logs kept in", dir)
			os.Exit(1)
		}
	}
	if *keep {
		fmt.Fprintln(os.Stderr, "reliability: logs kept in", dir)
		return
	}
	os.RemoveAll(dir)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "reliability:", err)
	os.Exit(2)
}

func defaults(short bool) params {
	p := params{events: 200000, rate: 3000, kills: 20, workers: 2, session: 10 * time.Second, external: os.Getenv("RELIABILITY_BROKERS")}
	if short {
		p.events, p.rate, p.kills, p.short = 3000, 1000, 3, true
	}
	return p
}

// build compiles the pcistream binary into dir.
func build(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "pcistream")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/pcistream")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// runAll runs the scenarios in order; the clean run is the baseline for
// the throughput ratios.
func runAll(ctx context.Context, p params) []row {
	p.log("reliability: %d events at %d/s, %d kills, %d workers, session timeout %s", p.events, p.rate, p.kills, p.workers, p.session)
	base := clean(ctx, p)
	p.log("clean: %.0f events/s, err %v", base.throughput, base.err)
	rows := []row{base}
	type scenario struct {
		name string
		run  func() row
	}
	scen := []scenario{
		{"kill", func() row { return workerKills(ctx, p) }},
		{"storm", func() row { return storm(ctx, p) }},
		{"tokenizer-kill", func() row { return tokenizerKills(ctx, p) }},
	}
	if p.external == "" || p.kafka != nil {
		scen = append(scen,
			scenario{"broker-sigkill", func() row { return brokerFault(ctx, p, syscall.SIGKILL) }},
			scenario{"broker-sigterm", func() row { return brokerFault(ctx, p, syscall.SIGTERM) }})
	}
	if miniotest.Binary() != "" {
		scen = append(scen,
			scenario{"s3-hung", func() row { return s3Fault(ctx, p, true) }},
			scenario{"s3-stopped", func() row { return s3Fault(ctx, p, false) }})
	} else {
		p.log("auditor S3 scenarios skipped: %v", errNoMinio)
	}
	for _, s := range scen {
		if !selected(p.only, s.name) {
			continue
		}
		baseline := base.throughput
		if s.name == "tokenizer-kill" {
			// The tokenizer's own clean run at the same load is its baseline.
			q := p
			q.kills = 0
			tb := tokenizerKills(ctx, q)
			p.log("tokenizer clean: %.0f events/s, err %v", tb.throughput, tb.err)
			rows = append(rows, tb)
			baseline = tb.throughput
		}
		r := s.run()
		r.cleanThroughput = baseline
		p.log("%s: lost %d dup %d leaked %d audit dup %d, recovery p95 %s, %.0f events/s, err %v",
			r.name, r.t.lost, r.t.dup, r.t.leaked, r.t.auditDup, pct(r.recovery, 0.95), r.throughput, r.err)
		rows = append(rows, r)
	}
	return rows
}

func report(p params, rows []row, command string) string {
	var b strings.Builder
	mode := "long mode"
	switch {
	case p.short:
		mode = "short mode"
	case p.events < 200000 || p.kills < 20:
		mode = fmt.Sprintf("medium mode (%d events, %d kills)", p.events, p.kills)
	}
	if p.kafka != nil {
		mode += " on " + p.brokerName()
	}
	if p.only != "" {
		mode += ", scenarios " + p.only // its own section: a partial run replaces no full one
	}
	fmt.Fprintf(&b, "## Reliability, %s (%s)\n\n", mode, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "Machine: %s, %d CPUs (shared with other jobs; timings are noisy). Command: `%s`.\n", runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), command)
	fmt.Fprintf(&b, "Masker workers: %d (`pcistream run masker`, static membership, session timeout %s) on %s, ", p.workers, p.session, p.stackName())
	fmt.Fprintf(&b, "offered load %d events/s, %d events per scenario. Recovery: a killed worker's restart until it commits a transaction; after a broker restart, until every worker commits again. ", p.rate, p.events)
	b.WriteString("Throughput: events / (first offered → all committed), against the clean run at the same offered load. ")
	b.WriteString("Lost and duplicated compare each event's outputs with its input records; \"input dup.\" counts events the test's idempotent producer wrote twice because a restarted broker no longer knew its sequence numbers (each must then come out twice).\n\n")
	b.WriteString("| scenario | events | kills | faults | lost | duplicated | leaked | dup. audit events | input dup. (producer) | recovery p50 | recovery p95 | drained after last fault | throughput (×clean) | worker exits | result |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		res := "ok"
		if r.err != nil {
			res = "FAIL: " + strings.ReplaceAll(r.err.Error(), "|", "/")
		} else if r.t.lost+r.t.dup+r.t.leaked+r.t.auditDup > 0 || len(r.exits) > 0 {
			res = "FAIL"
		}
		ratio := "—"
		if r.cleanThroughput > 0 {
			ratio = fmt.Sprintf("%.2f", r.throughput/r.cleanThroughput)
		}
		rec50, rec95 := "—", "—"
		if len(r.recovery) > 0 {
			rec50, rec95 = pct(r.recovery, 0.5).Round(10*time.Millisecond).String(), pct(r.recovery, 0.95).Round(10*time.Millisecond).String()
		}
		drain := "—"
		if r.drain > 0 {
			drain = r.drain.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %d | %d | %d | %d | %d | %s | %s | %s | %.0f/s (%s) | %d | %s |\n",
			r.name, r.events, r.kills, r.faults, r.t.lost, r.t.dup, r.t.leaked, r.t.auditDup, r.t.inputDup, rec50, rec95, drain, r.throughput, ratio, len(r.exits), res)
	}
	b.WriteString("\n")
	if slices.ContainsFunc(rows, func(r row) bool { return r.s3 != nil }) {
		b.WriteString(s3Report(rows))
	}
	return b.String()
}

// writeSection replaces the section of md's mode in path (or appends it).
func writeSection(path, md string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	if s == "" {
		s = "# pcistream reliability\n\nWritten by `go run ./bench/reliability` (bench/reliability/main.go); each run replaces the section of its mode.\n\n"
	}
	header, _, _ := strings.Cut(md, "\n")
	header, _, _ = strings.Cut(header, " (")
	if i := strings.Index(s, header+" ("); i >= 0 {
		j := strings.Index(s[i+len(header):], "\n## ")
		if j < 0 {
			s = s[:i] + md
		} else {
			s = s[:i] + md + s[i+len(header)+j+1:]
		}
	} else {
		s += md
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
