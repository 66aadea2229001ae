package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/dlq"
	"github.com/pcistream/pcistream/processors/tokenizer"
	"github.com/pcistream/pcistream/schemas"
)

// newDLQCmd builds `pcistream dlq`: list dead letters, and re-process their
// source records after a fix.
func newDLQCmd(cfg *config.Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect dead letters, and redrive their source records after a fix",
		Long: `A dead letter holds a reason code, the source record's coordinates and a masked
copy, never the input. 'inspect' lists them; 'redrive' re-processes the source
records (read from the raw topic, while its retention keeps them) through the
processor as it is configured now, exactly like a replay of just those offsets:
outside the live consumer group, in transactions of its own, audited.`,
	}
	cmd.AddCommand(newDLQInspectCmd(cfg), newDLQRedriveCmd(cfg))
	return cmd
}

// dlqTopic returns the dead-letter topic of processor.
func dlqTopic(cfg *config.Config, processor string) (string, error) {
	switch processor {
	case "tokenizer":
		return cfg.Topics.PaymentsDLQ, nil
	case "masker":
		return cfg.Topics.LogsDLQ, nil
	}
	return "", usageError{fmt.Errorf("processor %q has no dead-letter topic: use tokenizer or masker", processor)}
}

// dlqSelection holds the flags that choose dead letters; the source range
// flags (--partition, --from-offset, ...) are the replay's.
type dlqSelection struct {
	codes []string
}

func (s *dlqSelection) bind(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&s.codes, "reason-code", nil, "select dead letters with these reason codes (e.g. oversize,malformed_avro; default all)")
}

// filter builds the selection from the reason codes and the source range.
func (s *dlqSelection) filter(f *replayFlags) (dlq.Filter, error) {
	flt := dlq.All()
	flt.Reasons = s.codes
	flt.FromOffset, flt.ToOffset = f.from, f.to
	if len(f.partitions) > 1 {
		return flt, usageError{fmt.Errorf("--partition: give one source partition at most, or none")}
	}
	if len(f.partitions) == 1 {
		flt.SourcePartition = f.partitions[0]
	}
	r, err := f.rng("")
	if err != nil {
		return flt, usageError{err}
	}
	flt.From, flt.To = r.FromTime, r.ToTime
	return flt, nil
}

func newDLQInspectCmd(cfg *config.Config) *cobra.Command {
	var (
		sel    dlqSelection
		f      replayFlags
		format string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "inspect tokenizer|masker",
		Short: "List dead letters (masked) with their reasons and source coordinates",
		Example: `  pcistream dlq inspect masker
  pcistream dlq inspect tokenizer --reason-code malformed_avro --from-time 2026-11-29T14:00:00Z --format json`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"tokenizer", "masker"},
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, err := dlqTopic(cfg, args[0])
			if err != nil {
				return err
			}
			flt, err := sel.filter(&f)
			if err != nil {
				return err
			}
			serde, kopts, err := connect(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			return inspectDLQ(cmd, kopts, serde, topic, flt, format, limit)
		},
	}
	sel.bind(cmd)
	f.bindRange(cmd)
	cmd.Flags().StringVarP(&format, "format", "o", "table", "output: table or json (one dead letter per line)")
	cmd.Flags().IntVar(&limit, "limit", 0, "show at most this many (0: all); the count is always complete")
	return cmd
}

func inspectDLQ(cmd *cobra.Command, kopts []kgo.Opt, serde *schemas.Serde, topic string, flt dlq.Filter, format string, limit int) error {
	if format != "table" && format != "json" {
		return usageError{fmt.Errorf("--format %q: use table or json", format)}
	}
	out := cmd.OutOrStdout()
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if format == "table" {
		fmt.Fprintln(tw, "DLQ\tREASON\tSOURCE\tSOURCE TIME\tMASKED COPY")
	}
	n := 0
	enc := json.NewEncoder(out)
	err := dlq.Read(cmd.Context(), kopts, serde, topic, flt, func(e dlq.Entry) error {
		n++
		if limit > 0 && n > limit {
			return nil
		}
		if format == "json" {
			return enc.Encode(e)
		}
		fmt.Fprintf(tw, "%d@%d\t%s\t%s/%d@%d\t%s\t%s\n", e.Partition, e.Offset, e.ReasonCode, e.SourceTopic, e.SourcePartition, e.SourceOffset,
			time.UnixMilli(e.SourceTimestampMs).UTC().Format(time.RFC3339), preview(e.MaskedValue))
		return nil
	})
	if format == "table" {
		tw.Flush()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%d dead letters in %s match\n", n, topic)
	return nil
}

// preview is one line of a masked copy, quoted where it is not plain text.
func preview(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

func newDLQRedriveCmd(cfg *config.Config) *cobra.Command {
	var (
		sel dlqSelection
		f   replayFlags
		mf  maskerFlags
	)
	cmd := &cobra.Command{
		Use:   "redrive tokenizer|masker",
		Short: "Re-process the source records of selected dead letters (audited, exactly once)",
		Long: `Selects dead letters like 'dlq inspect', reads their source records from the raw
topic (while its retention keeps them) and re-processes them, in transactions of
its own, outside the live consumer group, as a resumable job like a replay. The
redrive is an audit event (action redrive) with your Kafka identity and --reason,
written before anything else.

masker: the records run through a masker configured by this command's flags
(--policy, --max-record-bytes). Records that fail again go to the DLQ again.

tokenizer: the records are handed, unchanged and with their original coordinates,
to the live tokenizer through its repartition topic (in PCI scope like the raw
topic), keyed by idempotency key. The live tokenizer, as deployed now (fix it
first), decides with its live idempotency state: a payment whose key was tokenized
meanwhile (a retry) stays a duplicate, and a record tokenized once is never
tokenized again, whichever job forwards it. Its outputs carry the source record's
coordinates, so their audit ids are the ones a first pass would have had. A record
that would fail again (the tokenizer's checks, sizes against --max-record-bytes: give
the live tokenizer's) is left alone and counted, never dead-lettered twice under one
audit id. The redrive needs no keyring; --policy does not apply.`,
		Example: `  pcistream dlq redrive tokenizer --reason-code unknown_schema_id --reason "INC-80 schema registered"
  pcistream dlq redrive masker --reason-code oversize --max-record-bytes 4194304 --reason "INC-77 raise the size limit"
  pcistream dlq redrive masker --dry-run --from-time 2026-11-29T14:00:00Z --reason "INC-78 check first"`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"tokenizer", "masker"},
		RunE: func(cmd *cobra.Command, args []string) error {
			dlqT, err := dlqTopic(cfg, args[0])
			if err != nil {
				return err
			}
			if args[0] == "tokenizer" && cmd.Flags().Changed("policy") {
				return usageError{fmt.Errorf("--policy configures the masker; a tokenizer redrive hands records to the live tokenizer")}
			}
			flt, err := sel.filter(&f)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			serde, kopts, err := connect(ctx, cfg)
			if err != nil {
				return err
			}
			srcs, err := dlq.Sources(ctx, kopts, serde, dlqT, flt)
			if err != nil {
				return err
			}
			raw := cfg.Topics.LogsRaw
			if args[0] == "tokenizer" {
				raw = cfg.Topics.PaymentsRaw
			}
			f.only = srcs[raw]
			if f.only == nil {
				f.only = map[int32][]int64{} // nothing selected: replay nothing
			}
			f.action = "redrive"
			if args[0] == "tokenizer" {
				rd, err := tokenizer.NewRedriver(serde, cfg.Topics.RepartitionTopic(), mf.maxBytes)
				if err != nil {
					return err
				}
				if err := runReplay(cmd, cfg, serde, kopts, "tokenizer", raw, rd, &f); err != nil {
					return err
				}
				for _, code := range slices.Sorted(maps.Keys(rd.Still)) {
					fmt.Fprintf(cmd.OutOrStdout(), "  left alone, would fail again: %d %s\n", rd.Still[code], code)
				}
				if !f.dryRun {
					fmt.Fprintf(cmd.OutOrStdout(), "  handed to the live tokenizer (group pcistream-tokenizer): its outputs reach %s, or %s again, as it processes them\n", cfg.Topics.PaymentsTokenized, cfg.Topics.PaymentsDLQ)
				}
				return nil
			}
			m, err := mf.build(serde, cfg)
			if err != nil {
				return err
			}
			return runReplay(cmd, cfg, serde, kopts, "masker", raw, m, &f)
		},
	}
	sel.bind(cmd)
	f.bind(cmd)
	mf.bind(cmd)
	return cmd
}
