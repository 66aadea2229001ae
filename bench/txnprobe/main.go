// Command txnprobe times the phases of a plain franz-go
// GroupTransactSession consume-produce loop (poll, produce, flush, end) on
// a real Apache Kafka broker, with no pcistream code in the loop: the floor
// under internal/eos, and a way to see where a transaction waits. It starts
// a broker (internal/devstack/kafkabroker) unless -addr names one.
//
//	go run ./bench/txnprobe -n 20000 -debug /tmp/kgo.log
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/pcistream/pcistream/internal/devstack/kafkabroker"
)

func main() {
	n := flag.Int("n", 5000, "records to copy (300 bytes each)")
	maxPoll := flag.Int("max-poll", 1000, "records per transaction at most")
	debug := flag.String("debug", "", "write franz-go's debug log to this file")
	addr := flag.String("addr", "", "use this broker (host:port) instead of starting one")
	minAge := flag.Duration("minage", 0, "kgo.MetadataMinAge (0: franz-go's default, 5s)")
	tv1 := flag.Bool("tv1", false, "cap request versions below KIP-890 part 2 (transaction.version 1 behaviour)")
	flag.Parse()
	if err := run(*n, *maxPoll, *debug, *addr, *minAge, *tv1); err != nil {
		log.Fatal(err)
	}
}

func run(n, maxPoll int, debug, addr string, minAge time.Duration, tv1 bool) error {
	ctx := context.Background()
	if addr == "" {
		b, err := kafkabroker.Start(ctx, kafkabroker.Options{FullJIT: true})
		if err != nil {
			return err
		}
		defer b.Stop()
		addr = b.Addr
	}
	in, out := fmt.Sprintf("probe-in-%d", time.Now().UnixNano()), fmt.Sprintf("probe-out-%d", time.Now().UnixNano())
	if err := fill(ctx, addr, in, out, n); err != nil {
		return err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.ConsumerGroup("g-" + in), kgo.ConsumeTopics(in),
		kgo.TransactionalID("t-" + in), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if minAge > 0 {
		opts = append(opts, kgo.MetadataMinAge(minAge))
	}
	if tv1 {
		v := kversion.Stable()
		v.SetMaxKeyVersion(0, 11) // Produce v11: partitions are added with AddPartitionsToTxn
		opts = append(opts, kgo.MaxVersions(v))
	}
	if debug != "" {
		f, err := os.Create(debug)
		if err != nil {
			return err
		}
		defer f.Close()
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(f, kgo.LogLevelDebug, func() string { return time.Now().Format("15:04:05.000000 ") })))
	}
	s, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return err
	}
	defer s.Close()
	got, t0 := 0, time.Now()
	for got < n {
		a := time.Now()
		fs := s.PollRecords(ctx, maxPoll)
		b := time.Now()
		if fs.NumRecords() == 0 {
			continue
		}
		if err := s.Begin(); err != nil {
			return err
		}
		fs.EachRecord(func(r *kgo.Record) {
			s.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value}, nil)
		})
		c := time.Now()
		ferr := s.Client().Flush(ctx)
		d := time.Now()
		ok, err := s.End(ctx, kgo.TryCommit)
		e := time.Now()
		got += fs.NumRecords()
		fmt.Printf("records=%d poll=%v produce=%v flush=%v end=%v committed=%v flush_err=%v end_err=%v\n",
			fs.NumRecords(), b.Sub(a), c.Sub(b), d.Sub(c), e.Sub(d), ok, ferr, err)
	}
	fmt.Println("total", time.Since(t0))
	return nil
}

// fill creates the topics (3 partitions) and writes n records to in.
func fill(ctx context.Context, addr, in, out string, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 3, 1, nil, in, out); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: in, Key: []byte(fmt.Sprint(i)), Value: make([]byte, 300)}, nil)
	}
	return cl.Flush(ctx)
}
