//go:build !nodev

package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/devstack"
)

// newDevCmd builds `pcistream dev`: the embedded stack on fixed local ports.
func newDevCmd(cfg *config.Config) *cobra.Command {
	var (
		kafkaAddr, registryAddr, s3Addr, dataDir string
		setup                                    bool
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Serve the embedded dev stack (Kafka, schema registry, S3 with Object Lock) in the foreground",
		Long: `Serve pcistream's embedded development stack on fixed local ports until Ctrl-C:
  - Kafka (kfake: the real wire protocol, transactions, consumer groups)
  - a Confluent-compatible schema registry that enforces Avro BACKWARD compatibility
  - an S3 gateway (versitygw) with Object Lock, retention and conditional puts,
    and the audit bucket created with Object Lock enabled.
Any Kafka or S3 client can connect (kcat, librdkafka, the AWS CLI). Every other
pcistream command's defaults point here. State lives in --data-dir and survives
restarts.`,
		Example: `  # the default ports, which every other command's defaults point at
  pcistream dev
  kcat -b 127.0.0.1:9092 -L

  # a second stack beside the first: other ports, another data dir, and the
  # same addresses given to the commands that use it
  pcistream dev --data-dir /tmp/pcistream-2 --kafka-addr 127.0.0.1:19092 \
    --registry-addr 127.0.0.1:18081 --s3-addr 127.0.0.1:17070
  kcat -b 127.0.0.1:19092 -L
  pcistream scan --brokers 127.0.0.1:19092 kafka:///logs.sanitized`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			dir, err := filepath.Abs(dataDir)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("data dir: %w", err)
			}
			st, err := devstack.Start(ctx,
				devstack.KafkaAddr(kafkaAddr), devstack.RegistryAddr(registryAddr), devstack.S3Addr(s3Addr),
				devstack.DataDir(dir), devstack.Bucket(cfg.S3.Bucket))
			if err != nil {
				return fmt.Errorf("%w (another `pcistream dev` running? pick other ports with --kafka-addr, --registry-addr, --s3-addr)", err)
			}
			defer st.Close()
			if setup {
				c := st.Config()
				c.Topics = cfg.Topics
				if err := st.Setup(ctx, &c); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "pcistream dev stack is up (data in %s)\n\n", st.DataDir)
			fmt.Fprintf(out, "  Kafka            %s\n", st.KafkaAddrs[0])
			fmt.Fprintf(out, "  Schema registry  %s\n", st.RegistryURL)
			fmt.Fprintf(out, "  S3               %s  (path-style, region %s)\n", st.S3.Endpoint, st.S3.Region)
			fmt.Fprintf(out, "    access key     %s\n", st.S3.AccessKey)
			fmt.Fprintf(out, "    secret key     %s\n", st.S3.SecretKey)
			fmt.Fprintf(out, "    audit bucket   %s  (Object Lock enabled)\n\n", st.S3.Bucket)
			if setup {
				fmt.Fprintln(out, "Topics created and schemas registered.")
			}
			fmt.Fprintf(out, "Environment for other shells:\n  export PCISTREAM_BROKERS=%s PCISTREAM_REGISTRY_URL=%s PCISTREAM_S3_ENDPOINT=%s\n\nCtrl-C to stop.\n",
				st.KafkaAddrs[0], st.RegistryURL, st.S3.Endpoint)
			<-ctx.Done()
			fmt.Fprintln(cmd.ErrOrStderr(), "stopping dev stack")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kafkaAddr, "kafka-addr", config.DefaultKafkaAddr, "Kafka listen address")
	f.StringVar(&registryAddr, "registry-addr", "127.0.0.1:8081", "schema registry listen address")
	f.StringVar(&s3Addr, "s3-addr", "127.0.0.1:7070", "S3 listen address")
	f.StringVar(&dataDir, "data-dir", ".pcistream-dev", "directory for Kafka logs, schemas and S3 objects (needs user xattrs: ext4, xfs, tmpfs)")
	f.BoolVar(&setup, "setup", true, "create the topics and register the schemas at start")
	return cmd
}
