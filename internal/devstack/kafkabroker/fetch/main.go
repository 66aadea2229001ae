// Command fetch fills the real-Kafka classpath cache (kafkabroker.LibDir)
// with Maven once, so tests and benchmarks start brokers without network.
//
//	go run ./internal/devstack/kafkabroker/fetch
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/pcistream/pcistream/internal/devstack/kafkabroker"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := kafkabroker.LibDir()
	if err := kafkabroker.Fetch(ctx, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(dir)
}
