package main

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/kafkabroker"
)

// startRealKafka starts a single-node Apache Kafka 4.x broker (package
// kafkabroker) with its data in the run directory, for the whole run: the
// scenarios then use it as an external cluster (each with its own topic
// and group names) and the broker-fault scenarios SIGKILL or SIGTERM it
// and restart it on its data dir. It returns kafkabroker.ErrNoJava (wrapped)
// when Java is absent.
func startRealKafka(ctx context.Context, p *params) error {
	if _, err := kafkabroker.Java(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	b, err := kafkabroker.Start(ctx, kafkabroker.Options{Dir: filepath.Join(p.dir, "kafka")})
	if err != nil {
		return fmt.Errorf("real Kafka broker: %w", err)
	}
	p.kafka, p.external = b, b.Addr
	return nil
}

// realKafkaWanted reports whether the run is asked for a real Kafka broker
// ($PCISTREAM_TEST_BROKER=kafka, the tests' convention) and no external
// cluster was given.
func realKafkaWanted() bool { return devstack.RealKafkaFromEnv() }

// brokerDown stops the scenario's broker with sig: the real Kafka broker
// when the run has one (SIGKILL as a crash; SIGTERM as a controlled
// shutdown, SIGKILL after 15 s), else the whole `pcistream dev` process.
func (e *env) brokerDown(sig syscall.Signal) {
	if k := e.p.kafka; k != nil {
		if sig == syscall.SIGKILL {
			k.Kill()
		} else {
			k.Stop() //nolint:errcheck // not a temporary dir: nothing is removed
		}
		return
	}
	e.dev.stop(sig)
}

// brokerUp restarts what brokerDown stopped, on the same data dir and ports.
func (e *env) brokerUp(ctx context.Context) error {
	if k := e.p.kafka; k != nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		return k.Restart(ctx)
	}
	return e.dev.start(ctx)
}

// brokerName says what the broker-fault scenarios stop.
func (p params) brokerName() string {
	if p.kafka != nil {
		return "Apache Kafka " + kafkabroker.Version
	}
	return "`pcistream dev`"
}

// stackName says what the workers ran on, for the report.
func (p params) stackName() string {
	if p.kafka != nil {
		return "a real Apache Kafka " + kafkabroker.Version + " broker (KRaft, one node, data dir kept across restarts) with `pcistream dev --data-dir` serving the registry and S3"
	}
	if p.external != "" {
		return "the Kafka at " + p.external + " with `pcistream dev --data-dir` serving the registry and S3"
	}
	return "`pcistream dev --data-dir`"
}
