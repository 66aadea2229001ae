package main

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/schemas"
)

// connect returns what every command that reads or writes pcistream's
// topics needs: the Kafka client options and the serde on the registry.
func connect(ctx context.Context, cfg *config.Config) (*schemas.Serde, []kgo.Opt, error) {
	kopts, err := kafkax.Opts(cfg.Kafka)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka options: %w", err)
	}
	serde, err := schemas.Open(ctx, cfg.Registry, cfg.Topics)
	if err != nil {
		return nil, nil, err
	}
	return serde, kopts, nil
}
