//go:build !nodev

package main

import (
	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
)

// addDevCommands adds `pcistream dev` and `pcistream demo`, which embed the
// development stack (kfake, the fake registry, the versitygw S3 gateway).
// The production build (-tags nodev) leaves them, and every dependency
// they pull in, out of the binary.
func addDevCommands(root *cobra.Command, cfg *config.Config) {
	root.AddCommand(newDevCmd(cfg), newDemoCmd(cfg))
}
