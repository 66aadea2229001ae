// Command peers measures pcistream's masker against the peers users would
// otherwise run, on one real Apache Kafka 4.x broker (package kafkabroker)
// with the same input: a Kafka Streams 4.x application doing the published
// masking job with processing.guarantee=exactly_once_v2 (bench/streams), and
// the hand-written franz-go loop without transactions. Each contender runs
// in its own process; the driver reports records/s, records per CPU-second
// of the contender's process, its peak RSS, and produce-to-visible latency
// (read_committed) at 50% and 90% of the contender's own measured capacity.
//
//	go run ./bench/peers -write bench/RESULTS.md
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pcistream/pcistream/internal/config"
)

const (
	beginMarker = "<!-- peers:begin -->"
	endMarker   = "<!-- peers:end -->"
)

func main() {
	var (
		records    = flag.Int("records", 100000, "input records for the throughput runs")
		partitions = flag.Int("partitions", 3, "partitions of every topic")
		latDur     = flag.Duration("latency-duration", 8*time.Second, "length of each latency run")
		write      = flag.String("write", "", "update the peers section of this RESULTS.md")
		jsonOut    = flag.String("json", "", "also write the raw results as JSON here (for bench/plot)")
		only       = flag.String("only", "masker,streams-eos,plain", "comma-separated contenders to run (masker,streams-eos,plain,streams-alo)")
		loads      = flag.String("loads", "0.5,0.9", "latency runs, as fractions of each contender's measured capacity")
		child      = flag.String("child", "", "internal: run one Go contender (masker or plain)")
		broker     = flag.String("broker", "", "internal: child's broker")
		registry   = flag.String("registry", "", "internal: child's registry URL")
		suffix     = flag.String("suffix", "", "internal: child's topic suffix")
		in         = flag.String("in", "", "internal: child's input topic")
		out        = flag.String("out", "", "internal: child's output topic")
		group      = flag.String("group", "", "internal: child's group")
	)
	flag.Parse()
	if *child != "" {
		os.Exit(childMain(*child, *broker, *registry, *in, *out, *suffix, *group))
	}
	for _, p := range []*string{write, jsonOut} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				log.Fatal(err)
			}
			*p = abs
		}
	}
	var ls []float64
	for _, f := range strings.Split(*loads, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 || v > 1 {
			log.Fatalf("-loads: %q is not a fraction in (0, 1]", f)
		}
		ls = append(ls, v)
	}
	res, err := run(context.Background(), runOpts{records: *records, partitions: int32(*partitions), latDur: *latDur, only: *only, loads: ls})
	if err != nil {
		log.Fatal(err)
	}
	md := report(res)
	fmt.Print(md)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		// The directory may not exist yet (bench/out is not in the
		// repository); a measured run must not be lost to it.
		if err := os.MkdirAll(filepath.Dir(*jsonOut), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	if *write != "" {
		if err := updateSection(*write, md); err != nil {
			log.Fatal(err)
		}
		log.Printf("updated %s", *write)
	}
}

// topicsFor names one contender run's topics.
func topicsFor(sfx string) config.Topics {
	d := config.DefaultTopics()
	return config.Topics{PaymentsRaw: d.PaymentsRaw + sfx, PaymentsTokenized: d.PaymentsTokenized + sfx, PaymentsDLQ: d.PaymentsDLQ + sfx,
		LogsRaw: d.LogsRaw + sfx, LogsSanitized: d.LogsSanitized + sfx, LogsDLQ: d.LogsDLQ + sfx, AuditEvents: d.AuditEvents + sfx,
		Vault: d.Vault + sfx, Idempotency: d.Idempotency + sfx}
}

func updateSection(path, md string) error {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(b)
	block := beginMarker + "\n" + md + endMarker
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i >= 0 && j > i {
		s = s[:i] + block + s[j+len(endMarker):]
	} else {
		if s == "" {
			s = "# Benchmark results\n\n"
		} else if !strings.HasSuffix(s, "\n\n") {
			s += "\n"
		}
		s += block + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
