package devstack

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/schemas"
	"github.com/pcistream/pcistream/topology"
)

// Setup applies the default topology and registers the schemas for the
// topics in c (Config() when c is nil), exactly as `pcistream topology
// apply` and `pcistream schemas register` would.
func (s *Stack) Setup(ctx context.Context, c *config.Config) error {
	if c == nil {
		cc := s.Config()
		c = &cc
	}
	return Setup(ctx, *c)
}

// Setup applies the default topology and registers the schemas against any
// cluster and registry described by c.
func Setup(ctx context.Context, c config.Config) error {
	opts, err := kafkax.Opts(c.Kafka)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	spec, err := topology.Default(c.Topics)
	if err != nil {
		return err
	}
	if _, err := topology.Apply(ctx, kadm.NewClient(cl), spec); err != nil {
		return fmt.Errorf("apply topology: %w", err)
	}
	src, err := schemas.NewClient(c.Registry)
	if err != nil {
		return err
	}
	if _, err := schemas.Register(ctx, src, c.Topics); err != nil {
		return fmt.Errorf("register schemas: %w", err)
	}
	return nil
}
