package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/pcistream/pcistream/internal/devstack"
)

// TestReliabilityShort runs the short mode of the suite: real processes (a
// built pcistream binary running `pcistream dev --data-dir` and masker
// workers), worker SIGKILLs, a rebalance storm, and a broker SIGKILL and
// SIGTERM with restart on its data dir. It fails on any lost, duplicated or
// leaked event, any duplicated audit event, or a worker that exited by
// itself. Timings are reported, never asserted (the machine is shared).
// With PCISTREAM_TEST_BROKER=kafka the broker is a real Apache Kafka 4.x
// (package kafkabroker), killed and restarted on its data dir.
func TestReliabilityShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes for tens of seconds; skipped with -short")
	}
	p := defaults(true)
	p.events = 2000
	p.only = "kill,storm,broker" // the auditor S3 scenarios: TestReliabilityAuditorS3
	p.dir = t.TempDir()
	var err error
	if p.bin, err = build(p.dir); err != nil {
		t.Fatal(err)
	}
	p.log = func(f string, a ...any) { t.Logf(f, a...) }
	if realKafkaWanted() {
		// PCISTREAM_TEST_BROKER=kafka: the same scenarios on a real Apache
		// Kafka broker, which the broker-fault scenarios kill and restart.
		if err := startRealKafka(context.Background(), &p); devstack.NoJava(err) {
			t.Skip(err)
		} else if err != nil {
			t.Fatal(err)
		}
		defer p.kafka.Stop() //nolint:errcheck
		if os.Getenv("PCISTREAM_TEST_KAFKA_BROKER_FAULTS") == "0" {
			// Opt-out, for a quick run: the broker-fault scenarios restart
			// the JVM twice. They run by default since the hanging
			// transaction a restart can leave (DIFFERENCES.md section 8)
			// is settled by the eos loop.
			p.only = "kill,storm"
			t.Log("broker SIGKILL/SIGTERM scenarios on Apache Kafka skipped (PCISTREAM_TEST_KAFKA_BROKER_FAULTS=0)")
		}
	}
	rows := runAll(context.Background(), p)
	t.Log("\n" + report(p, rows, "go test ./bench/reliability"))
	for _, r := range rows {
		if r.err != nil {
			t.Errorf("%s: %v", r.name, r.err)
		}
		if r.t.lost+r.t.dup+r.t.leaked+r.t.auditDup > 0 {
			t.Errorf("%s: lost %d, duplicated %d, leaked %d, duplicated audit events %d", r.name, r.t.lost, r.t.dup, r.t.leaked, r.t.auditDup)
		}
		if len(r.exits) > 0 {
			t.Errorf("%s: workers exited by themselves: %s", r.name, strings.Join(r.exits, "; "))
		}
	}
	if t.Failed() {
		keep, _ := os.MkdirTemp("", "pcistream-reliability-failed-")
		t.Logf("worker and broker logs: copy of %s kept in %s", p.dir, keep)
		os.CopyFS(keep, os.DirFS(p.dir)) //nolint:errcheck
	}
}
