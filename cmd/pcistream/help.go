package main

import (
	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/config"
)

// usageTemplate is cobra's default with one change: a command's own flags
// come first, and the shared flags follow under short group headings
// (Kafka, registry, S3, topics, logging) instead of one long list.
const usageTemplate = `Usage:{{if .Runnable}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{if gt (len .Aliases) 0}}

Aliases:
  {{.NameAndAliases}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Available Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .LocalNonPersistentFlags.HasAvailableFlags}}

Flags:
{{.LocalNonPersistentFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global flags (also PCISTREAM_<FLAG_NAME> environment variables and --config file keys):

{{groupedFlags .InheritedFlags}}{{else if .HasAvailablePersistentFlags}}

Global flags (also PCISTREAM_<FLAG_NAME> environment variables and --config file keys):

{{groupedFlags .PersistentFlags}}{{end}}{{if .HasAvailableSubCommands}}

Use "{{.CommandPath}} [command] --help" for more information about a command.{{end}}
`

// setUsage installs the grouped usage template on root (subcommands inherit
// it).
func setUsage(root *cobra.Command) {
	cobra.AddTemplateFunc("groupedFlags", config.GroupedUsages)
	root.SetUsageTemplate(usageTemplate)
}
