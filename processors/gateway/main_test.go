package gateway_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/internal/telemetry"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/processors/gateway"
	"github.com/pcistream/pcistream/schemas"
	"github.com/pcistream/pcistream/topology"
)

// One embedded stack (Kafka and registry, no S3) per test package; a real
// Apache Kafka broker with PCISTREAM_TEST_BROKER=kafka (devstacktest).
var stack *devstack.Stack

func TestMain(m *testing.M) {
	os.Exit(devstacktest.Main(m, &stack, devstacktest.StackOpts(devstack.WithoutS3())))
}

var seq atomic.Int32

// Test card numbers (network test PANs) and a distinctive CVV.
var testCards = []string{"4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"}

const testCVV = "9731"

// env is one test's gateway on its own topics.
type env struct {
	t       *testing.T
	topics  config.Topics
	kopts   []kgo.Opt
	serde   *schemas.Serde
	kr      *token.Keyring
	reg     *telemetry.Registry
	spans   *tracetest.InMemoryExporter
	logs    *devstacktest.Buffer
	svc     *gateway.Service
	url     string
	client  *http.Client
	stop    func()
	mu      sync.Mutex
	answers [][]byte
	// tls, when set, serves TLS; clientTLS is the test client's config.
	tls, clientTLS *tls.Config
	// stateDir is the idempotency state's directory (empty: temporary).
	stateDir string
}

func testTopics(t *testing.T) config.Topics {
	d := config.DefaultTopics()
	sfx := fmt.Sprintf(".%s.%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_")), seq.Add(1))
	return config.Topics{
		PaymentsRaw: d.PaymentsRaw + sfx, PaymentsTokenized: d.PaymentsTokenized + sfx, PaymentsDLQ: d.PaymentsDLQ + sfx,
		LogsRaw: d.LogsRaw + sfx, LogsSanitized: d.LogsSanitized + sfx, LogsDLQ: d.LogsDLQ + sfx,
		AuditEvents: d.AuditEvents + sfx, Vault: d.Vault + sfx, Idempotency: d.Idempotency + sfx,
		GatewayIdempotency: d.GatewayIdempotency + sfx,
	}
}

// setupTopics applies the default topology and registers the schemas for tp
// on the cluster at brokers.
func setupTopics(t *testing.T, brokers []string, tp config.Topics) ([]kgo.Opt, *schemas.Serde) {
	t.Helper()
	ctx := context.Background()
	kopts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	spec, err := topology.Default(tp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topology.Apply(ctx, kadm.NewClient(cl), spec); err != nil {
		t.Fatalf("topology apply: %v", err)
	}
	srcl, err := sr.NewClient(sr.URLs(stack.RegistryURL))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := schemas.Register(ctx, srcl, tp); err != nil {
		t.Fatalf("register schemas: %v", err)
	}
	serde, err := schemas.NewSerde(ctx, srcl, tp)
	if err != nil {
		t.Fatal(err)
	}
	return kopts, serde
}

// newEnv starts a gateway on the shared stack (or on brokers, when given).
func newEnv(t *testing.T, brokers []string, opts ...gateway.Opt) *env {
	t.Helper()
	return newEnvTLS(t, brokers, nil, nil, opts...)
}

// newEnvTLS is newEnv serving TLS with serverTLS, the client using clientTLS.
func newEnvTLS(t *testing.T, brokers []string, serverTLS, clientTLS *tls.Config, opts ...gateway.Opt) *env {
	t.Helper()
	if brokers == nil {
		brokers = stack.KafkaAddrs
	}
	tp := testTopics(t)
	kopts, serde := setupTopics(t, brokers, tp)
	kr, err := token.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, topics: tp, kopts: kopts, serde: serde, kr: kr, logs: &devstacktest.Buffer{}}
	e.tls, e.clientTLS = serverTLS, clientTLS
	e.start(t.Name(), opts...)
	t.Cleanup(e.stop)
	return e
}

// start runs a gateway instance with transactional id prefix id.
func (e *env) start(id string, opts ...gateway.Opt) {
	e.t.Helper()
	e.reg = telemetry.NewRegistry()
	e.spans = tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(e.spans), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	// A plain handler: the gateway adds the masking handler itself, and
	// the leak scan looks for masked PANs too, so it proves the gateway
	// logs no card data at all, not only that the masker hides it.
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := gateway.Start(ctx, gateway.ServiceConfig{
		ClientOpts: e.kopts, Keyring: e.kr, Vault: token.NewVault(e.kr), Serde: e.serde, Topics: e.topics,
		TransactionalID: strings.ReplaceAll(id, "/", "_"), Listener: ln, Logger: log, Registry: e.reg, TLS: e.tls,
		StateDir: e.stateDir,
		Opts:     append([]gateway.Opt{gateway.Tracer(tp.Tracer("test"))}, opts...),
	})
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	e.svc, e.url = svc, "http://"+svc.Addr()
	e.client = &http.Client{Timeout: 30 * time.Second}
	if e.tls != nil {
		e.url = "https://" + svc.Addr()
		e.client.Transport = &http.Transport{TLSClientConfig: e.clientTLS}
	}
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			if err := svc.Wait(); err != nil {
				e.t.Errorf("gateway: %v", err)
			}
		})
	}
}

// response is one HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// post sends body to path with the given headers (key, value pairs) and
// keeps the answer for the leak scan.
func (e *env) post(path, body string, hdr ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	e.mu.Lock()
	e.answers = append(e.answers, b)
	e.mu.Unlock()
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// paymentJSON is a valid authorization for card, with fields overridden by
// extra (raw JSON members, e.g. `"amount_minor": 5`).
func paymentJSON(id, card string, extra ...string) string {
	m := map[string]string{
		"payment_id": `"` + id + `"`, "event_type": `"AUTHORIZATION"`, "pan": `"` + card + `"`,
		"expiry_month": "12", "expiry_year": "2030", "cvv": `"` + testCVV + `"`,
		"cardholder_name": `"Jane Q Cardholder"`, "amount_minor": "1999", "currency": `"EUR"`,
		"merchant_id": `"m-1"`, "metadata": `{"order":"o-1"}`,
	}
	order := []string{"payment_id", "event_type", "pan", "expiry_month", "expiry_year", "cvv", "cardholder_name", "amount_minor", "currency", "merchant_id", "metadata"}
	for _, x := range extra {
		k, v, _ := strings.Cut(x, "=")
		if _, ok := m[k]; !ok {
			order = append(order, k)
		}
		m[k] = v
	}
	var sb strings.Builder
	sb.WriteString("{")
	first := true
	for _, k := range order {
		v, ok := m[k]
		if !ok || v == "-" {
			continue
		}
		if !first {
			sb.WriteString(",")
		}
		first = false
		fmt.Fprintf(&sb, "%q:%s", k, v)
	}
	sb.WriteString("}")
	return sb.String()
}

// read returns every committed record of topic.
func (e *env) read(topic string) []*kgo.Record {
	e.t.Helper()
	return readTopic(e.t, e.kopts, topic)
}

// readTopic returns the records of topic committed before the call: read
// through the high watermark, since Kafka answers a commit before its
// markers make the records visible at the last stable offset.
func readTopic(t *testing.T, kopts []kgo.Opt, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	if err := kafkax.ReadStable(ctx, kopts, topic, func(r *kgo.Record) error {
		out = append(out, r)
		return nil
	}, kafkax.ThroughHighWatermark()); err != nil {
		t.Fatalf("reading %s: %v", topic, err)
	}
	return out
}

// redact shows a test value without its digits, for failure messages.
func redact(b []byte) string {
	s := string(b)
	if len(s) > 300 {
		s = s[:300]
	}
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return '#'
		}
		return r
	}, s)
}
