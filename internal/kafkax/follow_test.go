package kafkax_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/kafkax"
)

// TestFollowMovesPastAnAbortBelowAnOpenTransaction: X's aborted record sits
// below Y's open transaction. A reader following the partition must say it
// has passed X's record (position 1) before Y is decided, with no record
// handed out; a kgo consumer hands out nothing there and so cannot say it.
// Once Y commits, Y's record follows, and the position passes both markers.
func TestFollowMovesPastAnAbortBelowAnOpenTransaction(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := stateCluster(t)
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("state")}
	x, y := devstacktest.OpenTxn(t, opts, "x"), devstacktest.OpenTxn(t, opts, "y")
	if err := x.ProduceSync(ctx, &kgo.Record{Value: []byte("x-aborted")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := y.ProduceSync(ctx, &kgo.Record{Value: []byte("y-committed")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := x.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	cl := plainClient(t, c)
	type seen struct {
		recs []string
		next int64
	}
	events := make(chan seen, 100)
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var recs []string
	go func() {
		done <- kafkax.Follow(fctx, cl, "state", map[int32]int64{0: 0},
			func(r *kgo.Record) error { recs = append(recs, string(r.Value)); return nil },
			func(_ int32, next int64) error { events <- seen{recs, next}; recs = nil; return nil })
	}()
	wait := func(what string, ok func(seen) bool) {
		t.Helper()
		for {
			select {
			case e := <-events:
				if len(e.recs) > 0 && e.recs[0] == "x-aborted" {
					t.Fatalf("the aborted record was handed out")
				}
				if ok(e) {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no position %s within 10s", what)
			}
		}
	}
	wait("past the aborted record while Y is open", func(e seen) bool {
		if len(e.recs) > 0 {
			t.Fatalf("records %v handed out while Y is open", e.recs)
		}
		return e.next == 1
	})
	if err := y.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	var got []string
	wait("past both markers after Y commits", func(e seen) bool {
		got = append(got, e.recs...)
		return e.next == 4
	})
	if len(got) != 1 || got[0] != "y-committed" {
		t.Fatalf("handed out %v, want [y-committed]", got)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Follow after cancel: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not return after its context ended")
	}
}

// TestFollowReturnsTheCallbackError: an error from the position callback
// ends the read with that error.
func TestFollowReturnsTheCallbackError(t *testing.T) {
	ctx, _, _, cl := committed(t, "r-", 2)
	boom := errors.New("boom")
	err := kafkax.Follow(ctx, cl, "state", map[int32]int64{0: 0},
		func(*kgo.Record) error { return nil },
		func(int32, int64) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Follow = %v, want the callback's error", err)
	}
}

// TestFollowRidesOutAnOutage: brokers that stop answering (every fetch
// and metadata request fails, the connection closed), when a follow starts
// or in its middle, do not end it: Follow waits, as a kgo consumer does,
// and hands out what is committed once they answer again. A Follow that
// ended there left the gateway without its Idempotency-Key state (every
// keyed request 503) until the process was restarted.
func TestFollowRidesOutAnOutage(t *testing.T) {
	// Metadata not served from the client's cache, and no retries inside
	// the client: its metadata requests fail during the outage, as they do
	// once a longer outage outlasts the cache and the retries.
	ctx, c, p, cl := committed(t, "before-", 1, kgo.RequestRetries(0), kgo.MetadataMinAge(10*time.Millisecond))
	var down atomic.Bool
	var refused atomic.Int32
	for _, key := range []kmsg.Key{kmsg.Fetch, kmsg.Metadata} {
		c.ControlKey(int16(key), func(kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			if !down.Load() {
				return nil, nil, false
			}
			refused.Add(1)
			return nil, errors.New("outage"), true
		})
	}
	got := make(chan string, 10)
	done := make(chan error, 1)
	outage := func(what string) {
		t.Helper()
		refused.Store(0)
		down.Store(true)
		for refused.Load() < 6 { // fetches and metadata requests, refused
			select {
			case err := <-done:
				t.Fatalf("Follow ended during the outage %s: %v", what, err)
			case <-ctx.Done():
				t.Fatalf("Follow sent no requests during the outage %s", what)
			case <-time.After(10 * time.Millisecond):
			}
		}
		down.Store(false)
	}
	next := func(want string) {
		t.Helper()
		select {
		case v := <-got:
			if v != want {
				t.Fatalf("record %q, want %q", v, want)
			}
		case err := <-done:
			t.Fatalf("Follow ended: %v", err)
		case <-ctx.Done():
			t.Fatalf("no record %q", want)
		}
	}
	down.Store(true) // before Follow's first request
	go func() {
		done <- kafkax.Follow(ctx, cl, "state", map[int32]int64{0: 0},
			func(r *kgo.Record) error { got <- string(r.Value); return nil },
			func(int32, int64) error { return nil })
	}()
	outage("at its start")
	next("before-0")
	outage("in its middle")
	commitTxn(ctx, t, p, "after-", 1)
	next("after-0")
}

// TestFollowEndsWhenTheTopicIsDeleted: brokers that answer but no longer
// have the topic are not an outage to wait out.
func TestFollowEndsWhenTheTopicIsDeleted(t *testing.T) {
	ctx, _, _, cl := committed(t, "r-", 1, kgo.MetadataMinAge(10*time.Millisecond))
	read := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- kafkax.Follow(ctx, cl, "state", map[int32]int64{0: 0},
			func(*kgo.Record) error { read <- struct{}{}; return nil },
			func(int32, int64) error { return nil })
	}()
	<-read
	if _, err := kadm.NewClient(cl).DeleteTopic(ctx, "state"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "topic not found") {
			t.Fatalf("Follow = %v, want a missing topic", err)
		}
	case <-ctx.Done():
		t.Fatal("Follow kept waiting for a deleted topic")
	}
}

// stateCluster is a one-broker kfake cluster with a one-partition topic
// "state", closed when the test ends.
func stateCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// plainClient is a client of c with opts, closed when the test ends.
func plainClient(t *testing.T, c *kfake.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// committed starts a test of Follow: a context of a minute, a cluster
// whose topic "state" holds n committed records (prefix0, prefix1, ...),
// the transactional producer that wrote them, and a client of the cluster
// with opts; all closed when the test ends.
func committed(t *testing.T, prefix string, n int, opts ...kgo.Opt) (context.Context, *kfake.Cluster, *kgo.Client, *kgo.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	c := stateCluster(t)
	p := txnProducer(t, c.ListenAddrs())
	t.Cleanup(p.Close)
	commitTxn(ctx, t, p, prefix, n)
	return ctx, c, p, plainClient(t, c, opts...)
}
