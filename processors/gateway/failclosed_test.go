package gateway_test

import (
	"bytes"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pcistream/pcistream/processors/gateway"
)

// ownCluster starts a Kafka of the test's own, which it can slow down or
// stop without disturbing the other tests.
func ownCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestBrokerDownIs503(t *testing.T) {
	c := ownCluster(t)
	e := newEnv(t, c.ListenAddrs(), gateway.CommitTimeout(time.Second))
	if r := e.post("/v1/payments", paymentJSON("p-up", testCards[0])); r.status != http.StatusAccepted {
		t.Fatalf("broker up: %d %s", r.status, redact(r.body))
	}
	c.Close()
	start := time.Now()
	r := e.post("/v1/payments", paymentJSON("p-down", testCards[1]), "Idempotency-Key", "down-1")
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("broker down: %d Retry-After=%q %s", r.status, r.header.Get("Retry-After"), redact(r.body))
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("503 took %s", d)
	}
	// Later requests too, while it stays down: never a 2xx.
	for i := range 3 {
		if r := e.post("/v1/payments", paymentJSON("p-down", testCards[1]), "Idempotency-Key", "down-1"); r.status != http.StatusServiceUnavailable {
			t.Fatalf("retry %d while down: %d", i, r.status)
		}
	}
	// Unready: the idempotency state cannot be read up to date (no key is
	// answered without it), or the committer failed.
	if e.svc.Gateway.Ready() == nil && e.svc.Commit.Ready() == nil {
		t.Fatalf("the gateway reports ready with the broker down")
	}
	e.assertNoLeaksAnswersAndLogs()
}

func TestSlowKafkaIs503ThenRetryLands(t *testing.T) {
	c := ownCluster(t)
	e := newEnv(t, c.ListenAddrs(), gateway.CommitTimeout(500*time.Millisecond), gateway.MaxInFlight(2))
	if r := e.post("/v1/payments", paymentJSON("p-warm", testCards[0])); r.status != http.StatusAccepted {
		t.Fatalf("warm-up: %d %s", r.status, redact(r.body))
	}
	// Hold every EndTxn for a while: transactions cannot commit.
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	c.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	r := e.post("/v1/payments", paymentJSON("p-slow", testCards[1]), "Idempotency-Key", "slow-1")
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("slow Kafka: %d %s", r.status, redact(r.body))
	}
	// Over the in-flight budget: 503 at once, before any work.
	var wg sync.WaitGroup
	statuses := make(chan int, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- e.post("/v1/payments", paymentJSON("p-burst", testCards[2]), "Idempotency-Key", "burst-"+string(rune('a'+i))).status
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusServiceUnavailable {
			t.Fatalf("a request got %d while Kafka could not commit", s)
		}
	}
	unblock()
	c.DropControl()
	// Kafka is back: the client's retry is accepted and lands exactly once,
	// whether the held transaction committed or not.
	deadline := time.Now().Add(30 * time.Second)
	var ok response
	for {
		ok = e.post("/v1/payments", paymentJSON("p-slow", testCards[1]), "Idempotency-Key", "slow-1")
		if ok.status == http.StatusAccepted || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ok.status != http.StatusAccepted {
		t.Fatalf("retry after recovery: %d %s", ok.status, redact(ok.body))
	}
	n := 0
	time.Sleep(time.Second) // let a held transaction finish either way
	for _, r := range e.read(e.topics.PaymentsRaw) {
		if string(r.Key) == "slow-1" {
			n++
		}
	}
	// The held transaction may have committed after its request got 503;
	// the key stays held until its outcome is final, so the retry replays
	// it or writes it once.
	if n != 1 {
		t.Fatalf("payments.raw holds %d committed records of slow-1, want 1", n)
	}
	e.assertNoLeaksAnswersAndLogs()
}

// assertNoLeaksAnswersAndLogs checks the answers and logs when the cluster
// cannot be read any more.
func (e *env) assertNoLeaksAnswersAndLogs() {
	e.t.Helper()
	logs := e.logs.Bytes()
	for _, c := range testCards {
		if containsStr(logs, c) {
			e.t.Fatalf("the log holds a PAN")
		}
	}
	if digitRun(logs, testCVV) {
		e.t.Fatalf("the log holds the CVV")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range e.answers {
		for _, c := range testCards {
			if containsStr(a, c) {
				e.t.Fatalf("an answer holds a PAN")
			}
		}
	}
}

func containsStr(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }
