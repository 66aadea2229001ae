package gateway_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/processors/gateway"
)

// sibling starts a second gateway instance on e's topics and keyring (a
// replica behind the same load balancer).
func (e *env) sibling(id string, opts ...gateway.Opt) *env {
	e.t.Helper()
	s := &env{t: e.t, topics: e.topics, kopts: e.kopts, serde: e.serde, kr: e.kr, logs: &devstacktest.Buffer{}}
	s.start(id, opts...)
	e.t.Cleanup(s.stop)
	return s
}

func countKey(e *env, topic, key string) int {
	n := 0
	for _, r := range e.read(topic) {
		if string(r.Key) == key {
			n++
		}
	}
	return n
}

// A retry that reaches another instance right after the first request's
// 202 is a replay there, not a second payment: an instance's committer
// reads the key's partition up to its end offset, listed after the request
// was queued, before it writes a key the instance did not know, so there
// is no window in which a committed key is unknown.
func TestRetryOnAnotherInstanceRightAfterCommit(t *testing.T) {
	a := newEnv(t, nil)
	b := a.sibling(t.Name() + "-b")
	for i := range 20 {
		key := "cross-" + string(rune('a'+i))
		body := paymentJSON("p-"+key, testCards[i%len(testCards)])
		first := a.post("/v1/payments", body, "Idempotency-Key", key)
		if first.status != http.StatusAccepted {
			t.Fatalf("first on A: %d %s", first.status, redact(first.body))
		}
		retry := b.post("/v1/payments", body, "Idempotency-Key", key)
		if retry.status != http.StatusAccepted || string(retry.body) != string(first.body) || retry.header.Get(gateway.ReplayedHeader) != "true" {
			t.Fatalf("retry on B: %d replayed=%q %s", retry.status, retry.header.Get(gateway.ReplayedHeader), redact(retry.body))
		}
		changed := b.post("/v1/payments", paymentJSON("p-"+key, testCards[i%len(testCards)], `amount_minor=1`), "Idempotency-Key", key)
		if changed.status != http.StatusConflict {
			t.Fatalf("changed body on B: %d", changed.status)
		}
	}
	if n := len(a.read(a.topics.PaymentsRaw)); n != 20 {
		t.Fatalf("payments.raw holds %d records, want 20", n)
	}
	a.assertNoLeaks(nil)
	b.assertNoLeaks(nil)
}

// A commit slower than the request deadline: the first request gets 503,
// its transaction then commits. The retry, sent while that commit is still
// pending, waits for it and replays its answer; nothing is written twice.
func TestLateCommitAndFastRetryWriteOnce(t *testing.T) {
	c := ownCluster(t)
	e := newEnv(t, c.ListenAddrs(), gateway.CommitTimeout(time.Second))
	if r := e.post("/v1/payments", paymentJSON("p-warm", testCards[0])); r.status != http.StatusAccepted {
		t.Fatalf("warm-up: %d %s", r.status, redact(r.body))
	}
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	c.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	body := paymentJSON("p-late", testCards[1])
	first := e.post("/v1/payments", body, "Idempotency-Key", "late-1")
	if first.status != http.StatusServiceUnavailable {
		t.Fatalf("first, commit held: %d %s", first.status, redact(first.body))
	}
	// The first transaction is still open (its EndTxn is held). The retry
	// arrives now; the commit completes while it waits.
	retried := make(chan response, 1)
	go func() { retried <- e.post("/v1/payments", body, "Idempotency-Key", "late-1") }()
	time.Sleep(300 * time.Millisecond)
	unblock()
	c.DropControl()
	retry := <-retried
	if retry.status != http.StatusAccepted || retry.header.Get(gateway.ReplayedHeader) != "true" {
		t.Fatalf("retry during the late commit: %d replayed=%q %s", retry.status, retry.header.Get(gateway.ReplayedHeader), redact(retry.body))
	}
	if again := e.post("/v1/payments", body, "Idempotency-Key", "late-1"); again.status != http.StatusAccepted || string(again.body) != string(retry.body) {
		t.Fatalf("later retry: %d %s", again.status, redact(again.body))
	}
	if n := countKey(e, e.topics.PaymentsRaw, "late-1"); n != 1 {
		t.Fatalf("payments.raw holds %d records of late-1, want exactly 1", n)
	}
	e.assertNoLeaks(nil)
}

// The state survives a restart on the same --state-dir: the new instance
// restores from its checkpoint and still replays and refuses.
func TestStateDirRestart(t *testing.T) {
	e := newEnv(t, nil)
	body := paymentJSON("p-dir", testCards[2])
	first := e.post("/v1/payments", body, "Idempotency-Key", "dir-1")
	if first.status != http.StatusAccepted {
		t.Fatalf("first: %d", first.status)
	}
	e.stop()
	dir := t.TempDir()
	for i := range 2 { // the second start reuses the directory
		e.startDir(t.Name()+"-r", dir)
		if r := e.post("/v1/payments", body, "Idempotency-Key", "dir-1"); r.status != http.StatusAccepted || string(r.body) != string(first.body) {
			t.Fatalf("start %d: retry %d %s", i, r.status, redact(r.body))
		}
		if r := e.post("/v1/payments", paymentJSON("p-dir", testCards[2], `amount_minor=7`), "Idempotency-Key", "dir-1"); r.status != http.StatusConflict {
			t.Fatalf("start %d: changed body %d", i, r.status)
		}
		e.stop()
	}
	if n := countKey(e, e.topics.PaymentsRaw, "dir-1"); n != 1 {
		t.Fatalf("payments.raw holds %d records of dir-1, want 1", n)
	}
}

// startDir runs an instance keeping its idempotency state in dir.
func (e *env) startDir(id, dir string) {
	e.t.Helper()
	e.stateDir = dir
	e.start(id)
}
