package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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
	root.SetFlagErrorFunc(flagError)
}

// usageError is a mistake in how a command was called; it exits with
// status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// ExitCode makes the process exit with status 2.
func (usageError) ExitCode() int { return 2 }

// flagError restates a flag parse error in one line that names the flag,
// the value and the help to read, without the parser's internals
// ("strconv.ParseInt: parsing …").
func flagError(cmd *cobra.Command, err error) error {
	var iv *pflag.InvalidValueError
	if errors.As(err, &iv) {
		f := iv.GetFlag()
		msg := fmt.Sprintf("--%s: %q is not a valid %s", f.Name, iv.GetValue(), f.Value.Type())
		var ne *strconv.NumError
		if cause := errors.Unwrap(iv); cause != nil && !errors.As(cause, &ne) && !strings.HasPrefix(cause.Error(), "time: ") {
			msg = fmt.Sprintf("--%s: %v", f.Name, cause)
		}
		err = errors.New(msg)
	}
	return usageError{fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())}
}
