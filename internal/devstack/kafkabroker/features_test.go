package kafkabroker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pcistream/pcistream/internal/devstack/kafkabroker"
)

// TestFeatures formats a broker with transaction version 1 (Options.Features)
// and checks the finalized level the broker advertises: what franz-go reads
// to choose between transaction versions 1 and 2.
func TestFeatures(t *testing.T) {
	if _, err := kafkabroker.Java(); errors.Is(err, kafkabroker.ErrNoJava) {
		t.Skip("java not installed: real-Kafka tests need a JDK 17+; .ci/run installs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := kafkabroker.Start(ctx, kafkabroker.Options{Features: []string{"transaction.version=1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	level := int16(-1)
	for _, f := range resp.FinalizedFeatures {
		if f.Name == "transaction.version" {
			level = f.MaxVersionLevel
		}
	}
	if level != 1 {
		t.Fatalf("finalized transaction.version = %d, want 1", level)
	}
}
