package devstack_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/eos"
)

// TestCommitCrashRealKafka is TestCommitCrash's scenario on Apache Kafka
// (PCISTREAM_TEST_BROKER=kafka): the worker's one transaction over its
// input is committing when the broker is SIGKILLed, first as soon as the
// EndTxn request is on the wire, then as soon as its answer is back (the
// markers are written asynchronously after it). After each restart the
// worker resumes from its committed offsets; every input must have exactly
// one output. Kafka's coordinator writes PREPARE_COMMIT to its transaction
// log before any marker and completes it when it loads the log again, so
// no kill point can separate the outputs from the offsets.
func TestCommitCrashRealKafka(t *testing.T) {
	if !devstack.RealKafkaFromEnv() {
		t.Skip("needs PCISTREAM_TEST_BROKER=kafka (a real broker to SIGKILL)")
	}
	if os.Getenv("PCISTREAM_TEST_KAFKA_BROKER_FAULTS") == "0" {
		t.Skip("broker SIGKILL inside a commit on Apache Kafka skipped (PCISTREAM_TEST_KAFKA_BROKER_FAULTS=0)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	brokerOpt, err := devstack.BrokerFromEnv()
	if err != nil {
		t.Skip(err)
	}
	s, err := devstack.Start(ctx, devstack.WithoutS3(), devstack.DataDir(t.TempDir()), brokerOpt)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addrs := s.KafkaAddrs
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic("in"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 1, 1, nil, "in", "out"); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, killOn := range []string{"request", "response"} {
		for i := range txnCrashInputs {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%s-%d", killOn, i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		total += txnCrashInputs
		killDuringCommit(ctx, t, s, addrs, total, killOn)
		if err := s.Broker.Restart(ctx); err != nil {
			t.Fatalf("restart after SIGKILL: %v", err)
		}
		t.Logf("kill on EndTxn %s: right after the restart group offset %d of %d inputs, %d outputs (the coordinator may still be completing the commit)",
			killOn, committedOffset(ctx, t, addrs), total, countOutputs(ctx, t, addrs))
		if err := drain(ctx, t, addrs, int64(total)); err != nil {
			t.Fatalf("resumed worker: %v", err)
		}
		if got := countOutputs(ctx, t, addrs); got != int64(total) {
			t.Fatalf("kill on EndTxn %s: %d outputs for %d inputs, want exactly one each", killOn, got, total)
		}
	}
}

// killDuringCommit runs the worker over the uncommitted inputs and
// SIGKILLs the broker when the worker's EndTxn request is written
// (killOn "request") or its response read ("response").
func killDuringCommit(ctx context.Context, t *testing.T, s *devstack.Stack, addrs []string, total int, killOn string) {
	t.Helper()
	var once sync.Once
	killed := make(chan struct{})
	kill := func() { once.Do(func() { s.Broker.Kill(); close(killed) }) }
	n := total - int(committedOffset(ctx, t, addrs))
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	done := make(chan error, 1)
	go func() {
		done <- maskInputs(wctx, addrs, []int{n}, nil, kgo.WithHooks(endTxnHook{killOn: killOn, kill: kill}))
	}()
	select {
	case <-killed:
	case err := <-done:
		t.Fatalf("the worker finished before the kill: %v", err)
	}
	// The worker cannot finish against a dead broker: stop it.
	time.Sleep(time.Second)
	wcancel()
	<-done
}

// drain runs the worker, resumed as pcistream runs it (an eos.Loop with the
// killed worker's transactional id), until the group has committed all total
// inputs. It cannot count what is left: after the restart the coordinator
// may still be completing the interrupted commit, and the worker's offset
// fetch (require_stable) waits for it; and Kafka can leave the commit's
// offsets as a hanging transaction (kafkabroker/DIFFERENCES.md 8), which the
// loop settles from the outputs' markers.
func drain(ctx context.Context, t *testing.T, addrs []string, total int64) error {
	mask := eos.ProcessorFunc(func(_ context.Context, r *kgo.Record, o *eos.Out) error {
		o.Emit(&kgo.Record{Topic: "out", Key: r.Value, Value: append([]byte("masked "), r.Value...)})
		return nil
	})
	l, err := eos.New(mask, eos.Name("txncrash"), eos.Group(txnCrashGroup), eos.Topics("in"), eos.OutputTopics("out"),
		eos.TransactionalID("masker-0"), eos.InstanceID(""), eos.ClientOpts(kgo.SeedBrokers(addrs...)),
		eos.Logger(slog.New(slog.NewTextHandler(testWriter{t}, nil))))
	if err != nil {
		return err
	}
	lctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.Run(lctx) }()
	defer func() { stop(); <-done }()
	for committedOffset(ctx, t, addrs) < total {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("the loop stopped: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return nil
}

// testWriter sends the loop's log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// endTxnHook calls kill on the worker's EndTxn request or response.
type endTxnHook struct {
	killOn string
	kill   func()
}

func (h endTxnHook) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if h.killOn == "request" && key == int16(kmsg.EndTxn) && err == nil {
		h.kill()
	}
}

func (h endTxnHook) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if h.killOn == "response" && key == int16(kmsg.EndTxn) && err == nil {
		h.kill()
	}
}
