package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/auditstore"
	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/internal/s3x"
)

// s3Hold is how long an S3 fault lasts: longer than the 30 s within which
// every auditor must report not ready.
const s3Hold = 40 * time.Second

// auditors is the auditor side of an S3 scenario: MinIO and two
// `pcistream run auditor` workers archiving the masker's audit events.
type auditors struct {
	m        *minioProc
	bucket   string
	group    string
	key, pub string
	ws       []*worker
	notReady []time.Duration // per auditor: fault until /readyz 503 naming S3 (0: never)
	body     string          // the first such /readyz body
}

// startAuditors starts MinIO with an Object Lock bucket and two auditors on
// e's audit topic, and waits until they are ready.
func (e *env) startAuditors(ctx context.Context, dir string) (*auditors, error) {
	m, err := newMinio(dir)
	if err != nil {
		return nil, err
	}
	if err := m.start(ctx); err != nil {
		return nil, err
	}
	a := &auditors{m: m, bucket: "rel-audit", group: e.n.prefix + "rel-auditor", key: filepath.Join(dir, "audit.pem")}
	a.pub = strings.TrimSuffix(a.key, ".pem") + ".pub.pem"
	if err := createLockedBucket(ctx, m.s3(a.bucket)); err != nil {
		m.kill()
		return nil, err
	}
	if out, err := exec.Command(e.p.bin, "audit", "keygen", "--out", a.key).CombinedOutput(); err != nil {
		m.kill()
		return nil, fmt.Errorf("audit keygen: %v: %s", err, out)
	}
	for i := 0; i < 2; i++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		w := &worker{name: fmt.Sprintf("auditor-%d", i), bin: e.p.bin, logDir: dir, metrics: port,
			args: append([]string{"run", "auditor", "--brokers", e.brokers, "--registry-url", e.dev.registryURL(),
				"--group", a.group, "--signing-key", a.key, "--writer-name", fmt.Sprintf("auditor-%d", i),
				"--batch-age", "1s", "--checkpoint-interval", "5s", "--retention", "1h",
				"--topic-audit-events", e.n.audit, "--topic-audit-checkpoints", e.n.ckpt}, a.s3Args()...)}
		if err := w.start(); err != nil {
			return nil, err
		}
		a.ws = append(a.ws, w)
	}
	for _, w := range a.ws {
		if err := waitReady(ctx, w, 90*time.Second); err != nil {
			a.close()
			return nil, err
		}
	}
	return a, nil
}

func (a *auditors) s3Args() []string {
	c := a.m.s3(a.bucket)
	return []string{"--s3-endpoint", c.Endpoint, "--s3-bucket", c.Bucket, "--s3-access-key", c.AccessKey,
		"--s3-secret-key", c.SecretKey, "--s3-path-style", "--s3-region", c.Region}
}

func (a *auditors) close() {
	for _, w := range a.ws {
		w.kill(syscall.SIGTERM)
	}
	a.m.kill()
}

// watchNotReady polls every auditor's /readyz from the fault on, for at
// most limit, and records when each first answers 503 with a body naming
// S3.
func (a *auditors) watchNotReady(ctx context.Context, fault time.Time, limit time.Duration) {
	a.notReady = make([]time.Duration, len(a.ws))
	for time.Since(fault) < limit && ctx.Err() == nil {
		all := true
		for i, w := range a.ws {
			if a.notReady[i] > 0 {
				continue
			}
			all = false
			// The probe is named "s3"; its reason names the endpoint
			// unless the probe itself timed out.
			if code, body := w.readyz(); code == http.StatusServiceUnavailable && strings.Contains(strings.ToLower(body), "s3") {
				a.notReady[i] = time.Since(fault)
				if a.body == "" {
					a.body = strings.Join(strings.Fields(body), " ")
				}
			}
		}
		if all {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitAllReady waits until every auditor answers /readyz 200.
func (a *auditors) waitAllReady(ctx context.Context, limit time.Duration) error {
	for _, w := range a.ws {
		if err := waitReady(ctx, w, limit); err != nil {
			return err
		}
	}
	return nil
}

var failuresRe = regexp.MustCompile(`(?m)^pcistream_audit_write_failures_total ([0-9.e+]+)$`)

// writeFailures sums the auditors' pcistream_audit_write_failures_total.
func (a *auditors) writeFailures() float64 {
	var sum float64
	for _, w := range a.ws {
		cl := http.Client{Timeout: 5 * time.Second}
		resp, err := cl.Get("http://" + addr(w.metrics) + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if m := failuresRe.FindSubmatch(b); m != nil {
			v, _ := strconv.ParseFloat(string(m[1]), 64)
			sum += v
		}
	}
	return sum
}

// warnedEndpoint reports whether an auditor logged a warning line that
// names the S3 endpoint.
func (a *auditors) warnedEndpoint(dir string) bool {
	logs, _ := filepath.Glob(filepath.Join(dir, "auditor-*.log"))
	host := addr(a.m.port)
	for _, l := range logs {
		f, err := os.Open(l)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if line := sc.Text(); strings.Contains(line, "WARN") && strings.Contains(line, host) {
				f.Close()
				return true
			}
		}
		f.Close()
	}
	return false
}

// waitTrail waits until the chained batches in S3 hold want records (the
// audit topic's committed data records): the trail is complete. It polls
// the manifests, reading each one once.
func (a *auditors) waitTrail(ctx context.Context, want int, limit time.Duration) error {
	cl, err := s3x.NewClient(ctx, a.m.s3(a.bucket))
	if err != nil {
		return err
	}
	st := auditstore.New(cl, a.bucket)
	seen := map[string]int{}
	got := 0
	deadline := time.Now().Add(limit)
	for {
		err := st.List(ctx, chain.ManifestPrefix, "", func(k string) error {
			if _, ok := seen[k]; ok {
				return nil
			}
			body, _, err := st.Get(ctx, k, "")
			if err != nil {
				return err
			}
			m, err := chain.DecodeManifest(body)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			seen[k] = m.RecordCount
			got += m.RecordCount
			return nil
		})
		if err == nil && got >= want {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the trail holds %d of %d audit events after %s (last error: %v)", got, want, limit, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// verify runs `pcistream verify` on the trail, with the Kafka cross-checks.
func (a *auditors) verify(e *env) error {
	args := append([]string{"verify", "--public-key", a.pub, "--brokers", e.brokers, "-q",
		"--topic-audit-events", e.n.audit, "--topic-audit-checkpoints", e.n.ckpt}, a.s3Args()...)
	out, err := exec.Command(e.p.bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pcistream verify: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// trailTally compares the audit events in the S3 trail (walking each
// partition's chain of manifests) with the audit topic read_committed:
// lost and duplicated by event key, and any object holding the test PAN.
type trailTally struct{ records, lost, dup, leaked int }

func (a *auditors) tally(ctx context.Context, e *env) (trailTally, error) {
	var t trailTally
	inTopic := map[string]int{}
	if err := readAll(ctx, e.brokers, e.n.audit, func(r *kgo.Record) { inTopic[string(r.Key)]++ }); err != nil {
		return t, err
	}
	cl, err := s3x.NewClient(ctx, a.m.s3(a.bucket))
	if err != nil {
		return t, err
	}
	st := auditstore.New(cl, a.bucket)
	inTrail := map[string]int{}
	// Every object in the bucket is scanned for the PAN; only chained
	// batches count as archived.
	var keys []string
	if err := st.List(ctx, chain.Root, "", func(k string) error { keys = append(keys, k); return nil }); err != nil {
		return t, err
	}
	for _, k := range keys {
		body, _, err := st.Get(ctx, k, "")
		if err != nil {
			return t, err
		}
		text := string(body)
		if strings.HasSuffix(k, ".gz") {
			lines, err := chain.DecodeObject(body)
			if err != nil {
				return t, fmt.Errorf("%s: %w", k, err)
			}
			text = string(joinLines(lines))
		}
		if strings.Contains(text, testPAN) {
			t.leaked++
		}
		if !strings.HasPrefix(k, chain.ManifestPrefix) {
			continue
		}
		m, err := chain.DecodeManifest(body)
		if err != nil {
			return t, fmt.Errorf("%s: %w", k, err)
		}
		obj, _, err := st.Get(ctx, m.ObjectKey, m.ObjectVersionID)
		if err != nil {
			return t, err
		}
		lines, err := chain.DecodeObject(obj)
		if err != nil {
			return t, fmt.Errorf("%s: %w", m.ObjectKey, err)
		}
		for _, l := range lines {
			var rec chain.Record
			if err := json.Unmarshal(l, &rec); err != nil {
				return t, fmt.Errorf("%s: %w", m.ObjectKey, err)
			}
			t.records++
			inTrail[rec.Key]++
		}
	}
	for k, n := range inTopic {
		t.lost += max(0, n-inTrail[k])
	}
	for k, n := range inTrail {
		t.dup += max(0, n-inTopic[k])
	}
	return t, nil
}

func joinLines(lines [][]byte) []byte {
	var b []byte
	for _, l := range lines {
		b = append(append(b, l...), '\n')
	}
	return b
}
