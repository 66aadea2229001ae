package auditor_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/processors/auditor"
)

// TestTwoWritersCannotForkTheChain runs two auditors in different groups over
// the same topic and bucket (what a zombie after a partition or a
// misconfigured second deployment looks like). Each batch is either adopted
// byte for byte or the second writer is fenced and stops: the chain never
// forks and holds every record exactly once.
func TestTwoWritersCannotForkTheChain(t *testing.T) {
	e := newEnv(t, "twowriters")
	produce(t, e.topic, 0, 60)
	start := func(group string, age time.Duration) (chan error, context.CancelFunc) {
		a, err := auditor.New(e.store, auditor.Topic(e.topic), auditor.Group(group),
			auditor.ClientOpts(kgo.SeedBrokers(stack.KafkaAddrs...)),
			auditor.BatchLimits(5+len(group)%3, 1<<20, age), auditor.Backoff(10*time.Millisecond, 50*time.Millisecond),
			auditor.Checkpoints(e.signer, time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		return done, cancel
	}
	d1, c1 := start("writer-a", 50*time.Millisecond)
	d2, c2 := start("writer-bb", 70*time.Millisecond) // different batch sizes: boundaries differ
	defer c1()
	defer c2()
	waitFor(t, "60 records archived", 30*time.Second, func() bool { return countRecords(t, e) == 60 })
	time.Sleep(300 * time.Millisecond)
	c1()
	c2()
	fenced := 0
	for _, d := range []chan error{d1, d2} {
		if err := <-d; err != nil {
			if !errors.Is(err, chain.ErrFenced) && !errors.Is(err, chain.ErrConflict) {
				t.Fatalf("auditor stopped with %v, want nil or fenced", err)
			}
			fenced++
		}
	}
	t.Logf("writers fenced: %d", fenced)
	assertExactlyOnce(t, e, 60)
}
