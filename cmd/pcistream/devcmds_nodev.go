//go:build nodev

package main

import (
	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
)

// addDevCommands adds nothing to the production build (-tags nodev): no
// embedded dev stack, so no kfake, fake registry or S3 gateway code in the
// binary. Run `pcistream dev` and `pcistream demo` from the default build.
func addDevCommands(*cobra.Command, *config.Config) {}
