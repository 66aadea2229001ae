package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/token"
)

// TestDedupAcrossPartitioners sends every payment four times through
// producers that partition differently: franz-go with murmur2 (the Java
// client's), librdkafka with consistent_random (its default, CRC32) and with
// random, and franz-go with explicit partitions. Retries that land on another
// partition than the original must still be duplicates: exactly one
// tokenized event per idempotency key.
func TestDedupAcrossPartitioners(t *testing.T) {
	// The Debian package installs for the system interpreter.
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py = "python3"
	}
	if err := exec.Command(py, "-c", "import confluent_kafka").Run(); err != nil {
		t.Skip("python3-confluent-kafka not installed (apt-get install python3-confluent-kafka; .ci/run does)")
	}
	script, err := filepath.Abs("testdata/produce_partitioned.py")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	kr, _ := token.NewKeyring()
	const n = 30
	var lines []string
	var murmur, explicit []*kgo.Record
	murmurPart := map[string]int32{}
	mp := kgo.StickyKeyPartitioner(nil).ForTopic(e.topics.PaymentsRaw)
	for i := range n {
		p := payment(fmt.Sprintf("pay-%d", i), fmt.Sprintf("retry-%d", i), testCards[i%len(testCards)])
		v, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		k := []byte(p.IdempotencyKey)
		lines = append(lines, p.IdempotencyKey+"\t"+string(v))
		murmurPart[p.IdempotencyKey] = int32(mp.Partition(&kgo.Record{Key: k}, 3))
		murmur = append(murmur, &kgo.Record{Key: k, Value: v, Partition: murmurPart[p.IdempotencyKey]})
		explicit = append(explicit, &kgo.Record{Key: k, Value: v, Partition: (murmurPart[p.IdempotencyKey] + 1) % 3})
	}
	e.produce(murmur...)
	file := filepath.Join(t.TempDir(), "payments.tsv")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for _, part := range []string{"consistent_random", "random"} {
		out, err := exec.Command(py, script, stack.KafkaAddrs[0], e.topics.PaymentsRaw, part, file).Output()
		if err != nil {
			t.Fatalf("librdkafka producer (%s): %v", part, err)
		}
		for i, f := range strings.Fields(string(out)) {
			if f != fmt.Sprint(murmurPart[fmt.Sprintf("retry-%d", i)]) {
				moved++
			}
		}
	}
	e.produce(explicit...)
	moved += n
	t.Logf("%d of %d retries landed on another partition than the original", moved, 3*n)
	if moved <= n {
		t.Fatalf("librdkafka put every retry on the murmur2 partition: the test would not exercise cross-partition retries")
	}

	tk := e.tokenizer(kr)
	defer tk.Close()
	stop := e.run(tk, "g-"+t.Name())
	e.waitCount(e.topics.AuditEvents, 4*n, 60*time.Second)
	stop()
	got := e.decodeTokenized(e.read(e.topics.PaymentsTokenized, false))
	per := map[string]int{}
	for _, tp := range got {
		per[tp.IdempotencyKey]++
	}
	if len(got) != n || len(per) != n {
		t.Fatalf("%d tokenized events for %d keys, want exactly %d (one per key)", len(got), len(per), n)
	}
	if s := tk.Stats(); s.Duplicates != 3*n {
		t.Fatalf("stats %+v, want %d duplicates", s, 3*n)
	}
	e.assertClean(e.allOutputs()...)
}
