// Command txnprobe times the phases of a GroupTransactSession loop on a real
// broker (diagnostic).
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
	n := flag.Int("n", 5000, "records")
	maxPoll := flag.Int("max-poll", 1000, "")
	debug := flag.String("debug", "", "kgo debug log file")
	addr := flag.String("addr", "", "existing broker")
	minAge := flag.Duration("minage", 0, "metadata min age")
	tv1 := flag.Bool("tv1", false, "cap versions to TV1")
	flag.Parse()
	ctx := context.Background()
	a := *addr
	if a == "" {
		b, err := kafkabroker.Start(ctx, kafkabroker.Options{FullJIT: true})
		if err != nil {
			log.Fatal(err)
		}
		defer b.Stop()
		a = b.Addr
	}
	fmt.Println("broker", a)
	cl, _ := kgo.NewClient(kgo.SeedBrokers(a))
	adm := kadm.NewClient(cl)
	in, out := fmt.Sprintf("in-%d", time.Now().UnixNano()), fmt.Sprintf("out-%d", time.Now().UnixNano())
	if _, err := adm.CreateTopics(ctx, 3, 1, nil, in, out); err != nil {
		log.Fatal(err)
	}
	for i := 0; i < *n; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: in, Key: []byte(fmt.Sprint(i)), Value: make([]byte, 300)}, nil)
	}
	cl.Flush(ctx)
	cl.Close()
	opts := []kgo.Opt{kgo.SeedBrokers(a), kgo.ConsumerGroup("g" + in), kgo.ConsumeTopics(in),
		kgo.TransactionalID("t" + in), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if *minAge > 0 {
		opts = append(opts, kgo.MetadataMinAge(*minAge))
	}
	if *tv1 {
		v := kversion.Stable()
		v.SetMaxKeyVersion(0, 11)
		opts = append(opts, kgo.MaxVersions(v))
	}
	if *debug != "" {
		f, _ := os.Create(*debug)
		defer f.Close()
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(f, kgo.LogLevelDebug, func() string { return time.Now().Format("15:04:05.000000 ") })))
	}
	s, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	got := 0
	t0 := time.Now()
	for got < *n {
		a := time.Now()
		fs := s.PollRecords(ctx, *maxPoll)
		b := time.Now()
		if fs.NumRecords() == 0 {
			continue
		}
		s.Begin()
		fs.EachRecord(func(r *kgo.Record) {
			s.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value}, nil)
		})
		c := time.Now()
		s.Client().Flush(ctx)
		d := time.Now()
		ok, err := s.End(ctx, kgo.TryCommit)
		e := time.Now()
		got += fs.NumRecords()
		fmt.Printf("recs=%d poll=%v produce=%v flush=%v end=%v ok=%v err=%v\n", fs.NumRecords(), b.Sub(a), c.Sub(b), d.Sub(c), e.Sub(d), ok, err)
	}
	fmt.Println("total", time.Since(t0))
}
