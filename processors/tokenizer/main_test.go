package tokenizer

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/schemas"
)

// One embedded stack per test package (versitygw allows one gateway per
// process; the tokenizer needs no S3, but the rule keeps tests cheap).
var stack *devstack.Stack

const childEnv = "PCISTREAM_TOKENIZER_TEST_CHILD"

func TestMain(m *testing.M) {
	os.Exit(devstacktest.Main(m, &stack, devstacktest.StackOpts(devstack.WithoutS3()), devstacktest.Child(childEnv, childMain)))
}

// env is one test's isolated world: its own topic names on the shared stack.
type env struct {
	t      *testing.T
	topics config.Topics
	opts   []kgo.Opt
	serde  *schemas.Serde
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvTopics(t, devstacktest.Topics(t))
}

func newEnvTopics(t *testing.T, tp config.Topics) *env {
	t.Helper()
	serde := devstacktest.Apply(t, stack, tp)
	return &env{t: t, topics: tp, opts: devstacktest.Opts(stack), serde: serde}
}

func (e *env) tokenizer(kr *token.Keyring, opts ...Opt) *Tokenizer {
	e.t.Helper()
	// A state directory the test removes: a tokenizer a test does not
	// Close would otherwise leave its temporary store behind.
	base := []Opt{Topics(e.topics), Logger(quietLogger()), StateDir(e.t.TempDir())}
	tk, err := New(kr, token.NewVault(kr), e.serde, append(base, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return tk
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// run runs tk in an eos loop until stop is called.
func (e *env) run(tk *Tokenizer, group string) (stop func()) {
	e.t.Helper()
	l, err := NewLoop(tk, e.opts, eos.Group(group), eos.TransactionalID(group+"-txn"), eos.Logger(quietLogger()),
		eos.SessionTimeout(6*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("loop: %v", err)
			}
		})
	}
}

// produce writes values to the raw topic (non-transactional, acks all),
// keyed by key(i) when key is non-nil, on an explicit partition when part >= 0.
func (e *env) produce(recs ...*kgo.Record) {
	e.t.Helper()
	cl, err := kgo.NewClient(append(e.opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	for _, r := range recs {
		if r.Topic == "" {
			r.Topic = e.topics.PaymentsRaw
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		e.t.Fatalf("produce: %v", err)
	}
}

// read returns every record of topic up to its current end, read_committed
// unless uncommitted.
//
// A committed read settles first: on Apache Kafka, EndTxn returns before the
// commit markers are written to every partition, so right after a
// transaction is seen committed on one topic (say audit events) its records
// on another can still be above that partition's last stable offset (kfake
// writes markers synchronously). read returns once two reads 250 ms apart
// agree (at most 5 s).
func (e *env) read(topic string, uncommitted bool) []*kgo.Record {
	e.t.Helper()
	if uncommitted {
		return devstacktest.ReadStable(e.t, stack, topic, kafkax.Uncommitted())
	}
	recs := devstacktest.ReadStable(e.t, stack, topic)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		again := devstacktest.ReadStable(e.t, stack, topic)
		if len(again) == len(recs) {
			return again
		}
		recs = again
	}
	return recs
}

// readNow reads topic once, without settling (crash tests time their
// kills on it).
func (e *env) readNow(topic string, uncommitted bool) []*kgo.Record {
	e.t.Helper()
	if uncommitted {
		return devstacktest.ReadStable(e.t, stack, topic, kafkax.Uncommitted())
	}
	return devstacktest.ReadStable(e.t, stack, topic)
}

// waitCount waits until topic holds n committed records.
func (e *env) waitCount(topic string, n int, timeout time.Duration) []*kgo.Record {
	e.t.Helper()
	return devstacktest.WaitStable(e.t, stack, topic, n, timeout)
}

func (e *env) encode(p *schemas.RawPayment) []byte {
	e.t.Helper()
	b, err := e.serde.Encode(p)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// Well-known test card numbers (network test PANs, not real cards).
var testCards = []string{"4111111111111111", "5555555555554444", "378282246310005", "6011111111111117", "3530111333300000"}

// testCVV is distinctive so byte scans cannot match by accident.
const testCVV = "9731"

func payment(id, idem, card string) *schemas.RawPayment {
	cvv := testCVV
	name := "Jane Q Cardholder"
	return &schemas.RawPayment{
		PaymentID: id, IdempotencyKey: idem, EventType: schemas.Authorization,
		PAN: card, ExpiryMonth: 12, ExpiryYear: 2030, CVV: &cvv, CardholderName: &name,
		AmountMinor: 1999, Currency: "EUR", MerchantID: "m-1",
		OccurredAt: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC).UnixMilli(),
	}
}

// decodedText returns an Avro record of topic tp decoded and rendered as
// JSON, so that byte scans see field boundaries instead of varints; vault
// ciphertext is left out (random bytes could match a short string by
// chance; the PAN scans cover it). Other records are returned as they are.
func (e *env) decodedText(tp string, v []byte) []byte {
	e.t.Helper()
	var dst any
	switch tp {
	case e.topics.Vault:
		dst = &schemas.VaultEntry{}
	case e.topics.PaymentsTokenized:
		dst = &schemas.TokenizedPayment{}
	case e.topics.AuditEvents:
		dst = &schemas.AuditEvent{}
	case e.topics.PaymentsDLQ:
		dst = &schemas.DLQRecord{}
	default:
		return v
	}
	if err := e.serde.Decode(context.Background(), v, dst); err != nil {
		e.t.Fatalf("%s record does not decode: %v", tp, err)
	}
	if ve, ok := dst.(*schemas.VaultEntry); ok {
		ve.WrappedKey, ve.Nonce, ve.Ciphertext = nil, nil, nil
	}
	if d, ok := dst.(*schemas.DLQRecord); ok {
		// Masked copies are bytes (base64 in JSON): scan them as text.
		b, _ := json.Marshal(d)
		return append(append(append(b, '\n'), d.MaskedKey...), append([]byte{'\n'}, d.MaskedValue...)...)
	}
	b, _ := json.Marshal(dst)
	return b
}

// holdsCode reports whether b holds code as a token of its own: not inside
// a longer run of letters and digits, where a hex id or a timestamp holds
// the same four digits by chance (a 32-digit hex id does about once in
// 2,300). A leaked CVV stands alone: "cvv":"9731", cvv=9731, or an Avro
// string after its length byte.
func holdsCode(b []byte, code string) bool {
	alnum := func(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(code))
		if j < 0 {
			return false
		}
		j += i
		end := j + len(code)
		if (j == 0 || !alnum(b[j-1])) && (end == len(b) || !alnum(b[end])) {
			return true
		}
		i = j + 1
	}
}

// assertClean scans every record the tokenizer wrote for PANs (the shared
// detector), the test PANs as raw digits, the CVV and the cardholder name.
// Vault ciphertext fields are excluded from the CVV/name scans after
// checking they decode (random bytes could match a short string by chance);
// the PAN scans cover them too.
func (e *env) assertClean(topics ...string) {
	e.t.Helper()
	det := pan.New()
	for _, tp := range topics {
		for _, r := range e.read(tp, true) {
			for _, b := range [][]byte{r.Key, r.Value} {
				if det.Contains(b) {
					e.t.Fatalf("%s[%d]@%d: the PAN detector finds a PAN", tp, r.Partition, r.Offset)
				}
				for _, c := range testCards {
					if bytes.Contains(b, []byte(c)) {
						e.t.Fatalf("%s[%d]@%d: holds a test PAN (%d digits, last4 %s)", tp, r.Partition, r.Offset, len(c), c[len(c)-4:])
					}
				}
			}
			scan := e.decodedText(tp, r.Value)
			if holdsCode(scan, testCVV) || holdsCode(r.Key, testCVV) {
				e.t.Fatalf("%s[%d]@%d: holds the CVV", tp, r.Partition, r.Offset)
			}
			// Undecodable DLQ input keeps its letters (digits are starred):
			// the name cannot be located in bytes that do not parse. Decoded
			// payments never carry it; TestInvalidInputGoesToDLQ checks that.
			if tp != e.topics.PaymentsDLQ && bytes.Contains(scan, []byte("Cardholder")) {
				e.t.Fatalf("%s[%d]@%d: holds the cardholder name", tp, r.Partition, r.Offset)
			}
		}
	}
}

func (e *env) allOutputs() []string {
	return []string{e.topics.PaymentsTokenized, e.topics.Vault, e.topics.AuditEvents, e.topics.PaymentsDLQ, e.topics.Idempotency}
}

func (e *env) decodeTokenized(recs []*kgo.Record) []schemas.TokenizedPayment {
	e.t.Helper()
	out := make([]schemas.TokenizedPayment, len(recs))
	for i, r := range recs {
		if err := e.serde.Decode(context.Background(), r.Value, &out[i]); err != nil {
			e.t.Fatal(err)
		}
	}
	return out
}

func TestHoldsCode(t *testing.T) {
	for in, want := range map[string]bool{
		`{"cvv":"9731"}`: true, "cvv=9731": true, "\x089731\x02": true, "9731": true,
		"e0ab9731f2": false, "17900000097312": false, "x9731": false,
	} {
		if got := holdsCode([]byte(in), "9731"); got != want {
			t.Errorf("holdsCode(%q) = %v, want %v", in, got, want)
		}
	}
}
