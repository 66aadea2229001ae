package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// s3Result is what an S3 fault scenario measures beyond the masker's row.
type s3Result struct {
	notReady      time.Duration // slowest auditor: fault until /readyz 503 naming S3
	failures      float64       // pcistream_audit_write_failures_total, all auditors
	warned        bool          // a WARN log line names the endpoint
	body          string        // the first /readyz 503 body seen
	verifyErr     error
	trail         trailTally
	trailComplete time.Duration // S3 back until the trail holds every audit event
}

// s3Fault runs the masker load with two auditors archiving its audit events
// to MinIO, and mid-load hangs MinIO (SIGSTOP for s3Hold, then SIGCONT) or
// crashes it (SIGKILL, restart on its data dir after s3Hold). It checks
// that every auditor reports not ready naming S3 within 30 s, logs a
// warning naming the endpoint, counts write failures and keeps running,
// and that afterwards the trail verifies and holds every audit event once
// and no PAN.
func s3Fault(ctx context.Context, p params, hang bool) row {
	kind, fault := "stopped", "SIGKILL of MinIO, restart on its data dir after "+s3Hold.String()
	if hang {
		kind, fault = "hung", "SIGSTOP of MinIO for "+s3Hold.String()+", then SIGCONT"
	}
	r := row{name: "auditor: S3 " + kind, events: p.events, faults: fault, s3: &s3Result{}}
	name := "s3-" + kind
	e, err := setup(ctx, p, name)
	if err != nil {
		r.err = err
		return r
	}
	defer e.close()
	dir := filepath.Join(p.dir, name)
	a, err := e.startAuditors(ctx, dir)
	if err != nil {
		r.err = err
		return r
	}
	defer a.close()
	start := time.Now()
	pr, err := startProducer(e.brokers, e.n.in, p.rate, p.events)
	if err != nil {
		r.err = err
		return r
	}
	pr.waitProduced(ctx, int64(p.events/3))
	at := time.Now()
	if hang {
		a.m.signal(syscall.SIGSTOP)
	} else {
		a.m.kill()
	}
	a.watchNotReady(ctx, at, s3Hold)
	time.Sleep(time.Until(at.Add(s3Hold)))
	if hang {
		a.m.signal(syscall.SIGCONT)
	} else if err := a.m.start(ctx); err != nil {
		pr.finish(ctx) //nolint:errcheck
		r.err = err
		return r
	}
	back := time.Now()
	res := r.s3
	res.notReady = slices.Max(a.notReady)
	res.body = a.body
	if slices.Contains(a.notReady, 0) {
		r.err = fmt.Errorf("auditors' /readyz did not turn 503 naming S3 within %s: %v", s3Hold, a.notReady)
	} else if res.notReady > 30*time.Second {
		r.err = fmt.Errorf("an auditor took %s to report not ready (target 30s)", res.notReady.Round(time.Second))
	}
	if err := a.waitAllReady(ctx, 3*time.Minute); err != nil && r.err == nil {
		r.err = fmt.Errorf("after S3 returned: %w", err)
	}
	r.recovery = append(r.recovery, time.Since(back))
	e.finish(ctx, &r, pr, start, back)
	// The audit topic is complete once the masker has drained; the trail
	// must then reach the same count.
	if err := a.waitTrail(ctx, r.t.audits, 3*time.Minute); err != nil && r.err == nil {
		r.err = fmt.Errorf("the auditors did not archive the audit topic: %w", err)
	}
	res.trailComplete = time.Since(back)
	res.failures = a.writeFailures()
	res.warned = a.warnedEndpoint(dir)
	for _, w := range a.ws {
		w.alive()
		w.mu.Lock()
		r.exits = append(r.exits, w.exitErrs...)
		w.mu.Unlock()
		w.kill(syscall.SIGTERM) // a graceful stop writes the last checkpoint
	}
	res.verifyErr = a.verify(e)
	res.trail, err = a.tally(ctx, e)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("reading the trail: %w", err)
	}
	switch {
	case r.err != nil:
	case res.failures == 0:
		r.err = fmt.Errorf("pcistream_audit_write_failures_total did not count the S3 fault")
	case !res.warned:
		r.err = fmt.Errorf("no auditor WARN log line names the S3 endpoint %s", a.m.endpoint())
	case res.verifyErr != nil:
		r.err = res.verifyErr
	case res.trail.lost+res.trail.dup+res.trail.leaked > 0:
		r.err = fmt.Errorf("trail: %d lost, %d duplicated audit events, %d objects with a PAN", res.trail.lost, res.trail.dup, res.trail.leaked)
	}
	return r
}

// s3Report is the auditor scenarios' table.
func s3Report(rows []row) string {
	var b strings.Builder
	b.WriteString("Auditor scenarios: the masker load as above, its audit events archived by two `pcistream run auditor` workers to MinIO (a separate process with an Object Lock bucket). ")
	b.WriteString("Not ready: fault until every auditor's /readyz answers 503 with a body naming S3 (target 30 s). Recovery: S3 back until every auditor is ready again; trail complete: S3 back until the chained batches hold every audit event of the (drained) masker's audit topic. ")
	b.WriteString("Lost and duplicated compare the audit events in the chained batches (walking the manifests) with the audit topic read_committed; PAN counts S3 objects holding the test card number.\n\n")
	b.WriteString("| scenario | fault | audit events archived | not ready after (slowest) | write failures | WARN names endpoint | worker exits | recovery | trail complete | `pcistream verify` | lost | duplicated | PAN in S3 | result |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		s := r.s3
		if s == nil {
			continue
		}
		res := "ok"
		if r.err != nil {
			res = "FAIL: " + strings.ReplaceAll(r.err.Error(), "|", "/")
		}
		verify := "passes"
		if s.verifyErr != nil {
			verify = "FAILS"
		}
		rec := "—"
		if len(r.recovery) > 0 {
			rec = r.recovery[0].Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %.0f | %v | %d | %s | %s | %s | %d | %d | %d | %s |\n",
			r.name, r.faults, s.trail.records, s.notReady.Round(100*time.Millisecond), s.failures, s.warned, len(r.exits),
			rec, s.trailComplete.Round(100*time.Millisecond), verify, s.trail.lost, s.trail.dup, s.trail.leaked, res)
	}
	b.WriteString("\n")
	for _, r := range rows {
		if r.s3 != nil && r.s3.body != "" {
			fmt.Fprintf(&b, "- %s, first /readyz 503 body: `%s`\n", r.name, strings.ReplaceAll(r.s3.body, "`", "'"))
		}
	}
	b.WriteString("\n")
	return b.String()
}
