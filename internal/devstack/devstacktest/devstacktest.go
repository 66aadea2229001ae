// Package devstacktest is the test scaffolding of every package that runs
// against the embedded dev stack: one stack per test package, started in
// TestMain (Main), and what each test needs on it — its own topic names
// (Name, Topics), the default topology and schemas applied to them (Apply),
// clients (Client, OpenTxn) and a topic read to its last stable offset (ReadStable).
//
// # One stack per package
//
// versitygw allows one S3 gateway per process, so a package starts one stack
// and its tests share it; isolation comes from topic, group and bucket names,
// never from separate stacks. Main also serves the crash tests' child
// processes: with Child(env, fn), a test binary re-executed with env set runs
// fn instead of the tests and starts no stack.
//
// # The Kafka backend
//
// By default Kafka is kfake, in process. Setting the environment variable
// PCISTREAM_TEST_KAFKA_BROKERS to a comma-separated list of seed brokers
// (host:port) runs the same tests against that cluster instead, for example a
// real Apache Kafka broker: Main then starts the stack with
// devstack.ExternalKafka, so Stack.KafkaAddrs are those seeds and
// Stack.Cluster is nil. Tests reach Kafka only through Stack.KafkaAddrs (or
// Stack.Config), and tests that need kfake itself (fault injection, a
// restart of the broker) call NeedKfake, which skips them on a real broker.
// A launcher that starts a real broker only has to set that variable, or pass
// devstack.ExternalKafka through StackOpts.
//
// Setting devstack.BrokerEnv (PCISTREAM_TEST_BROKER=kafka) instead makes Main
// start a real single-node Apache Kafka 4.x broker for the package
// (devstack.RealKafka, package kafkabroker): one JVM per test package, shared
// by its tests through their unique names; Stack.Broker can SIGKILL and
// restart it. Without Java the package is skipped with a one-line reason.
package devstacktest

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/schemas"
)

// BrokersEnv names the environment variable that replaces kfake with an
// external Kafka cluster (comma-separated seed brokers).
const BrokersEnv = "PCISTREAM_TEST_KAFKA_BROKERS"

// Opt configures Main.
type Opt func(*mainCfg)

type mainCfg struct {
	stackOpts []devstack.Opt
	childEnv  string
	child     func() int
	setup     bool
	timeout   time.Duration
}

// StackOpts passes options to devstack.Start (WithoutS3, ...).
func StackOpts(opts ...devstack.Opt) Opt {
	return func(c *mainCfg) { c.stackOpts = append(c.stackOpts, opts...) }
}

// Child makes the test binary run fn and exit with its result, without a
// stack, when the environment variable env is set: the crash tests re-execute
// the test binary as the worker they kill.
func Child(env string, fn func() int) Opt {
	return func(c *mainCfg) { c.childEnv, c.child = env, fn }
}

// Setup applies the default topology and registers the schemas under the
// default topic names once the stack is up.
func Setup() Opt { return func(c *mainCfg) { c.setup = true } }

// StartTimeout bounds the stack's start (default two minutes).
func StartTimeout(d time.Duration) Opt { return func(c *mainCfg) { c.timeout = d } }

// Main is a test package's TestMain body: it starts the stack, stores it in
// *stack, runs the tests, stops the stack and returns the exit code:
//
//	func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }
func Main(m *testing.M, stack **devstack.Stack, opts ...Opt) int {
	c := mainCfg{timeout: 2 * time.Minute}
	for _, o := range opts {
		o(&c)
	}
	if c.childEnv != "" && os.Getenv(c.childEnv) != "" {
		return c.child()
	}
	s, err := start(c)
	if devstack.NoJava(err) {
		// Real Kafka was asked for (devstack.BrokerEnv) and Java is absent.
		fmt.Println("skip:", err)
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "devstacktest:", err)
		return 1
	}
	defer s.Close()
	*stack = s
	return m.Run()
}

func start(c mainCfg) (*devstack.Stack, error) {
	opts := c.stackOpts
	if seeds := os.Getenv(BrokersEnv); seeds != "" {
		opts = append(opts, devstack.ExternalKafka(strings.Split(seeds, ",")...))
	} else if devstack.RealKafkaFromEnv() {
		// PCISTREAM_TEST_BROKER=kafka: this package's own real Apache
		// Kafka broker, reused by all its tests. A JVM starts slowly on a
		// busy machine.
		b, err := devstack.BrokerFromEnv()
		if err != nil {
			return nil, err
		}
		opts = append(opts, b)
		c.timeout = max(c.timeout, 5*time.Minute)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	s, err := devstack.Start(ctx, opts...)
	if err != nil {
		return nil, err
	}
	if c.setup {
		if err := s.Setup(ctx, nil); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// NeedKfake returns the stack's kfake cluster, and skips the test when the
// stack runs on an external Kafka (BrokersEnv).
func NeedKfake(t testing.TB, s *devstack.Stack) *kfake.Cluster {
	t.Helper()
	if s.Cluster == nil {
		t.Skipf("needs the in-process kfake cluster; the stack runs on another Kafka (%s or %s)", BrokersEnv, devstack.BrokerEnv)
	}
	return s.Cluster
}

// Name returns base followed by a suffix unique to this test and call, a
// valid Kafka topic, group or transactional id. Lowercase, so it also serves
// as an S3 bucket name part.
func Name(t testing.TB, base string) string {
	// Letters only: digits in names could meet the PAN and CVV scans
	// of the tests that read them back.
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return '-'
	}, t.Name())
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return base + "." + strings.Trim(name, "-") + "." + string(b)
}

// Topics returns the default topic names, each with the same suffix unique
// to this test and call.
func Topics(t testing.TB) config.Topics {
	return config.DefaultTopics().WithSuffix(Name(t, ""))
}

// Client returns a Kafka client on the stack with opts, closed when the test
// ends.
func Client(t testing.TB, s *devstack.Stack, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append(Opts(s), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// OpenTxn returns a client with base and extra options and transactional
// id id, in a transaction it has begun, closed when the test ends: another
// writer's transaction, for tests of what readers do around one.
func OpenTxn(t testing.TB, base []kgo.Opt, id string, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(slices.Concat(base, []kgo.Opt{kgo.TransactionalID(id)}, extra)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	return cl
}

// Opts returns the client options that reach the stack's Kafka.
func Opts(s *devstack.Stack) []kgo.Opt { return []kgo.Opt{kgo.SeedBrokers(s.KafkaAddrs...)} }

// CreateTopic creates topic with partitions partitions (replication 1).
func CreateTopic(t testing.TB, s *devstack.Stack, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(Client(t, s)).CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// Apply applies the default topology to the topics tp and registers the
// schemas for them, as `pcistream topology apply` and `pcistream schemas
// register` do, and returns the serde for tp.
func Apply(t testing.TB, s *devstack.Stack, tp config.Topics) *schemas.Serde {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := s.Config()
	cfg.Topics = tp
	if err := s.Setup(ctx, &cfg); err != nil {
		t.Fatal(err)
	}
	serde, err := schemas.Open(ctx, cfg.Registry, tp)
	if err != nil {
		t.Fatal(err)
	}
	return serde
}

// ReadStable returns the data records of every partition of topic, from the
// start to the last stable offset when it is called (kafkax.ReadStable),
// failing the test after 30 seconds.
func ReadStable(t testing.TB, s *devstack.Stack, topic string, ro ...kafkax.ReadOpt) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	err := kafkax.ReadStable(ctx, Opts(s), topic, func(r *kgo.Record) error {
		out = append(out, r)
		return nil
	}, ro...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// WaitStable reads topic to its last stable offset (ReadStable) until it
// holds at least n data records, and fails the test after timeout.
func WaitStable(t testing.TB, s *devstack.Stack, topic string, n int, timeout time.Duration, ro ...kafkax.ReadOpt) []*kgo.Record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		recs := ReadStable(t, s, topic, ro...)
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d records after %s, want %d", topic, len(recs), timeout, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
