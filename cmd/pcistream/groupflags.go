package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/eos"
)

// groupFlags are the consumer-group flags every exactly-once worker shares.
type groupFlags struct {
	instanceID     string
	sessionTimeout time.Duration
	protocol       string
}

func (g *groupFlags) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&g.instanceID, "instance-id", "", "static group member id, stable across restarts and unique per live worker, so a restarted worker gets its partitions back without a rebalance (default: the transactional id; \"none\" turns static membership off)")
	f.DurationVar(&g.sessionTimeout, "session-timeout", 45*time.Second, "how long a worker that died without leaving keeps its partitions (within the broker's group.min/max.session.timeout.ms)")
	f.StringVar(&g.protocol, "group-protocol", "classic", "consumer group protocol: classic (cooperative-sticky) or consumer (KIP-848, Kafka 4.0+)")
}

// opts returns the eos options for the flags.
func (g *groupFlags) opts() ([]eos.Opt, error) {
	var opts []eos.Opt
	switch g.instanceID {
	case "":
	case "none":
		opts = append(opts, eos.InstanceID(""))
	default:
		opts = append(opts, eos.InstanceID(g.instanceID))
	}
	if g.sessionTimeout > 0 {
		opts = append(opts, eos.SessionTimeout(g.sessionTimeout))
	}
	switch g.protocol {
	case "", "classic":
	case "consumer":
		opts = append(opts, eos.ServerAssignor(true))
	default:
		return nil, usageErr(fmt.Errorf("--group-protocol %q: use classic or consumer", g.protocol))
	}
	return opts, nil
}
