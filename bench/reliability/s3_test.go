package main

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestReliabilityAuditorS3 runs the short variant of the auditor
// scenarios: MinIO hung (SIGSTOP ~40 s) and stopped (SIGKILL, restart on its
// data dir) under the masker's load, both at once on separate stacks. It
// fails unless every auditor turned not ready naming S3 within 30 s, logged
// a warning naming the endpoint, counted write failures and kept running,
// and the trail then verifies with every audit event once and no PAN.
func TestReliabilityAuditorS3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes for about a minute; skipped with -short")
	}
	if realKafkaWanted() {
		t.Skip("the S3 faults do not involve the broker: they run in the kfake pass")
	}
	if _, err := newMinio(t.TempDir()); err != nil {
		t.Skip(err)
	}
	p := defaults(true)
	p.events = 2000
	p.dir = t.TempDir()
	var err error
	if p.bin, err = build(p.dir); err != nil {
		t.Fatal(err)
	}
	p.log = func(f string, a ...any) { t.Logf(f, a...) }
	rows := make([]row, 2)
	var wg sync.WaitGroup
	for i, hang := range []bool{true, false} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows[i] = s3Fault(context.Background(), p, hang)
		}()
	}
	wg.Wait()
	t.Log("\n" + report(p, rows, "go test ./bench/reliability -run TestReliabilityAuditorS3"))
	for _, r := range rows {
		if r.err != nil {
			t.Errorf("%s: %v", r.name, r.err)
		}
		if r.t.lost+r.t.dup+r.t.leaked+r.t.auditDup > 0 {
			t.Errorf("%s: masker: lost %d, duplicated %d, leaked %d, duplicated audit events %d", r.name, r.t.lost, r.t.dup, r.t.leaked, r.t.auditDup)
		}
		if len(r.exits) > 0 {
			t.Errorf("%s: workers exited by themselves: %s", r.name, strings.Join(r.exits, "; "))
		}
	}
	if t.Failed() {
		keep, _ := os.MkdirTemp("", "pcistream-reliability-failed-")
		t.Logf("worker, auditor and MinIO logs: copy of %s kept in %s", p.dir, keep)
		os.CopyFS(keep, os.DirFS(p.dir)) //nolint:errcheck
	}
}
