package main

import (
	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
)

// addRunCommands adds the processors to `pcistream run`.
func addRunCommands(run *cobra.Command, cfg *config.Config) {
	run.AddCommand(newRunMaskerCmd(cfg))
	run.AddCommand(newRunAuditorCmd(cfg))
	run.AddCommand(newRunTokenizerCmd(cfg))
	run.AddCommand(newRunGatewayCmd(cfg))
}

// addExtraCommands adds the commands of the audit trail (verify, audit) and
// the vault (detokenize).
func addExtraCommands(root *cobra.Command, cfg *config.Config) {
	root.AddCommand(newVerifyCmd(cfg), newAuditCmd(cfg), newReplayCmd(cfg))
	root.AddCommand(newDetokenizeCmd(cfg), newStatusCmd(cfg), newDLQCmd(cfg))
}

// addReplayCommands adds replays of processors other than the masker.
func addReplayCommands(replay *cobra.Command, cfg *config.Config) {
	replay.AddCommand(newReplayTokenizerCmd(cfg), newReplayAuditorCmd(cfg))
}
