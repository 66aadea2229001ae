package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/pcistream/pcistream/internal/devstack/kafkabroker"
)

// BrokerEnv names the environment variable that selects the Kafka broker the
// integration tests, the demo test and the reliability suite run on:
// "kfake" (the default: in process, fast) or "kafka" (a real Apache Kafka
// 4.x broker started by package kafkabroker). CI runs the listed tests on
// both; see README "Tests on real Kafka".
const BrokerEnv = "PCISTREAM_TEST_BROKER"

// BrokerFromEnv returns the Opt selecting the broker named by $BrokerEnv.
// When real Kafka is asked for and Java is absent it returns an error
// wrapping kafkabroker.ErrNoJava: tests skip on it with its message.
func BrokerFromEnv() (Opt, error) {
	switch v := os.Getenv(BrokerEnv); v {
	case "", "kfake":
		return func(*cfg) {}, nil
	case "kafka", "real", "apache":
		if _, err := kafkabroker.Java(); err != nil {
			return nil, fmt.Errorf("%s=%s: %w", BrokerEnv, v, err)
		}
		return RealKafka(), nil
	default:
		return nil, fmt.Errorf("%s=%q: want kfake or kafka", BrokerEnv, v)
	}
}

// RealKafkaFromEnv reports whether $BrokerEnv selects real Kafka.
func RealKafkaFromEnv() bool {
	switch os.Getenv(BrokerEnv) {
	case "kafka", "real", "apache":
		return true
	}
	return false
}

// StartFromEnv is Start on the broker $BrokerEnv selects.
func StartFromEnv(ctx context.Context, opts ...Opt) (*Stack, error) {
	b, err := BrokerFromEnv()
	if err != nil {
		return nil, err
	}
	return Start(ctx, append(opts, b)...)
}

// NoJava reports whether err means real Kafka was asked for on a machine
// without Java; a TestMain prints the error and exits 0 (skips) on it.
func NoJava(err error) bool { return errors.Is(err, kafkabroker.ErrNoJava) }
