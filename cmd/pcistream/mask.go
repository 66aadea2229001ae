package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/pan"
)

// newMaskCmd builds `pcistream mask`: a streaming filter that masks card
// numbers from stdin or files to stdout.
func newMaskCmd() *cobra.Command {
	var (
		policy    = pan.First6Last4
		maxBuffer int
		stats     bool
	)
	cmd := &cobra.Command{
		Use:   "mask [FILE...]",
		Short: "Mask card numbers (PANs) in text from stdin or files, writing to stdout",
		Long: `Mask copies its input to stdout with every card number masked: digits become '*'
(an escaped digit becomes an escaped '*': \u002a, %2A, &#42;), separators and length
are kept, so log parsers downstream keep working and JSON, URLs and XML stay valid.
It uses the same detector as the masker processor and the scanner: 12-19 digits,
Luhn-valid, in a known card network's range and length, however they are written
(glued to words, grouped by any mix of spaces, tabs, dashes, dots, colons, slashes,
commas, semicolons, pipes, NBSP or zero-width characters, wrapped across lines or by
quoted-printable soft breaks, split into quoted CSV/JSON/SQL fields or HTML tags, JSON,
JavaScript (\u{34}), Python (\U00000034), octal (\064) or percent (%34, %u0034)
escapes, HTML character references with or without ';', fullwidth or other scripts'
digits, UTF-16 text, the hex of the text (0x3431..., X'...', bytea \x...) or base64:
JWT payloads, Basic auth, blobs, masked by re-encoding). Look-alikes (timestamps,
UUIDs, hashes, IBANs, phone numbers, IPs, amounts, masked PANs, tokens) are kept.
Policies: first6last4 shows the first six and last four digits only for 16-19 digit
PANs (shorter ones show the last four), last4, full.

It streams: each line is written as soon as it is complete, memory stays bounded
(--max-buffer), and a line longer than that buffer is never passed through raw
(its digits are masked up to the next point where the text can be cut safely).

With no FILE, or when FILE is -, it reads standard input. Masking is idempotent.`,
		Example: `  tail -F /var/log/app.log | pcistream mask
  pcistream mask --policy last4 app.log app.log.1 > app.masked.log
  kubectl logs deploy/checkout | pcistream mask --stats`,
		RunE: func(cmd *cobra.Command, args []string) error {
			d := pan.New()
			if len(args) == 0 {
				args = []string{"-"}
			}
			out := cmd.OutOrStdout()
			var total pan.StreamStats
			var failed []error
			for _, name := range args {
				st, err := maskOne(d, out, cmd.InOrStdin(), name, policy, maxBuffer)
				total.Bytes += st.Bytes
				total.PANs += st.PANs
				total.FailClosed += st.FailClosed
				if err != nil {
					// Keep going like cat: one unreadable file should not
					// stop a pipeline; report all at the end.
					fmt.Fprintf(cmd.ErrOrStderr(), "pcistream mask: %v\n", err)
					failed = append(failed, err)
				}
			}
			if stats {
				fmt.Fprintf(cmd.ErrOrStderr(), "pcistream mask: %d bytes, %d PANs masked (policy %s)", total.Bytes, total.PANs, policy)
				if total.FailClosed > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), ", %d bytes fully digit-masked (no safe cut within --max-buffer)", total.FailClosed)
				}
				fmt.Fprintln(cmd.ErrOrStderr())
			}
			if len(failed) > 0 {
				cmd.SilenceErrors = true // already printed
				return fmt.Errorf("%d of %d inputs failed", len(failed), len(args))
			}
			return nil
		},
	}
	cmd.Flags().Var(&policy, "policy", "what a mask keeps: first6last4, last4 or full")
	cmd.Flags().IntVar(&maxBuffer, "max-buffer", 1<<20, "most bytes held while waiting for a safe cut point in a long line")
	cmd.Flags().BoolVar(&stats, "stats", false, "print bytes and PANs masked to stderr at the end")
	cmd.SilenceUsage = true
	return cmd
}

func maskOne(d *pan.Detector, w io.Writer, stdin io.Reader, name string, p pan.Policy, maxBuffer int) (pan.StreamStats, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return pan.StreamStats{}, fmt.Errorf("%s: no such file (check the path)", name)
			}
			return pan.StreamStats{}, fmt.Errorf("open %s: %w", name, err)
		}
		defer f.Close()
		r = f
	}
	st, err := d.MaskStream(w, r, p, pan.MaxBuffer(maxBuffer))
	if err != nil {
		return st, fmt.Errorf("%s: %w", name, err)
	}
	return st, nil
}
