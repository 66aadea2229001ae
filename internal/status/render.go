package status

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteJSON writes r as one indented JSON document, for scripts.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r for a person: one block per processor, then the audit
// trail, then anything that could not be read.
func WriteTable(w io.Writer, r *Report) error {
	fmt.Fprintf(w, "pcistream status at %s\n", r.Time.Format(time.RFC3339))
	// One tabwriter per block, so one wide block does not stretch the
	// columns of the others.
	block := func(f func(io.Writer)) error {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		f(tw)
		return tw.Flush()
	}
	for _, p := range r.Processors {
		if err := block(func(tw io.Writer) { writeProcessor(tw, r.Time, p) }); err != nil {
			return err
		}
	}
	if len(r.Jobs) > 0 {
		if err := block(func(tw io.Writer) { writeJobs(tw, r.Time, r.Jobs) }); err != nil {
			return err
		}
	}
	if err := block(func(tw io.Writer) { writeAudit(tw, r.Audit) }); err != nil {
		return err
	}
	if len(r.Rearchives) > 0 {
		if err := block(func(tw io.Writer) { writeRearchives(tw, r.Time, r.Rearchives) }); err != nil {
			return err
		}
	}
	if len(r.Errors) > 0 {
		fmt.Fprintln(w, "\nnot read:")
		for _, e := range r.Errors {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	return nil
}

func writeProcessor(tw io.Writer, now time.Time, p ProcessorStatus) {
	progress := "never"
	if p.LastProgress != nil {
		progress = now.Sub(*p.LastProgress).Round(time.Second).String() + " ago"
	}
	// The header line has no cells (a tab-free line ends the column
	// block), so it does not widen the rows below it.
	fmt.Fprintf(tw, "\n%s  group %s  %s  %d members  lag %d  last progress %s\n",
		p.Name, p.Group, p.State, len(p.Members), p.TotalLag, progress)
	for _, m := range p.Members {
		id := m.InstanceID
		if id == "" {
			id = m.ID
		}
		parts := strings.Join(m.Partitions, " ")
		if parts == "" {
			parts = "(no partitions: the other members hold them all)"
		}
		fmt.Fprintf(tw, "  member %s\t%s\t%s\n", id, m.Host, parts)
	}
	for _, l := range p.Lag {
		committed := fmt.Sprint(l.Committed)
		if l.Committed < 0 {
			committed = "-"
		}
		fmt.Fprintf(tw, "  %s/%d\tcommitted %s\tend %d\tlag %d\n", l.Topic, l.Partition, committed, l.End, l.Lag)
	}
	for _, rd := range p.Ready {
		state := "ready"
		if !rd.Ready {
			state = "NOT READY"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", rd.URL, state, rd.Detail)
	}
	if p.DLQ != nil {
		writeDLQ(tw, p.DLQ)
	}
}

// writeJobs lists replay and redrive jobs apart from the processors: their
// groups are their own, and their offsets are not the pipeline's.
func writeJobs(tw io.Writer, now time.Time, jobs []JobStatus) {
	fmt.Fprintln(tw, "\nreplay and redrive jobs (own groups; the processors' offsets are not theirs)")
	for _, j := range jobs {
		progress := "never"
		if j.LastProgress != nil {
			progress = now.Sub(*j.LastProgress).Round(time.Second).String() + " ago"
		}
		running := "idle or finished"
		if j.Members > 0 {
			running = "running"
		}
		fmt.Fprintf(tw, "  %s\tjob %s\t%s (%s)\tto log end %d\tlast progress %s\n", j.Processor, j.Job, j.State, running, j.ToLogEnd, progress)
		for _, l := range j.Lag {
			fmt.Fprintf(tw, "    %s/%d\tcommitted %d\tend %d\n", l.Topic, l.Partition, l.Committed, l.End)
		}
	}
}

func writeDLQ(tw io.Writer, d *DLQCounts) {
	since := "all retained"
	if d.Since != nil {
		since = "since " + d.Since.Format(time.RFC3339)
	}
	fmt.Fprintf(tw, "  dead letters in %s (%s): %d\n", d.Topic, since, d.Total)
	reasons := make([]string, 0, len(d.ByReason))
	for r := range d.ByReason {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		if d.ByReason[reasons[i]] != d.ByReason[reasons[j]] {
			return d.ByReason[reasons[i]] > d.ByReason[reasons[j]]
		}
		return reasons[i] < reasons[j]
	})
	for _, r := range reasons {
		fmt.Fprintf(tw, "    %s\t%d\n", r, d.ByReason[r])
	}
}

func writeAudit(tw io.Writer, a *AuditStatus) {
	if a == nil {
		return
	}
	if a.Checkpoint == nil {
		fmt.Fprintln(tw, "\naudit trail  no checkpoint yet")
		return
	}
	cp := a.Checkpoint
	fmt.Fprintf(tw, "\naudit trail  newest checkpoint %d at %s (%s ago), key %s (not verified here: run pcistream verify)\n", cp.Sequence, cp.Time.Format(time.RFC3339), a.Age, cp.KeyID)
	for _, h := range cp.Heads {
		fmt.Fprintf(tw, "  %s/%d\tbatch %d\tlast offset %d\t%d records\n", h.Topic, h.Partition, h.Sequence, h.LastOffset, h.TreeSize)
	}
}

// writeRearchives lists the auditor's re-archive jobs: finished once their
// signed checkpoint is written.
func writeRearchives(tw io.Writer, now time.Time, rs []RearchiveStatus) {
	fmt.Fprintln(tw, "\nauditor re-archives (trails of their own: pcistream verify --prefix PREFIX)")
	for _, r := range rs {
		cp := r.Checkpoint
		if cp == nil {
			fmt.Fprintf(tw, "  %s\tunfinished\t%d batches, no checkpoint yet: running, or interrupted (run the same replay again to resume)\n", r.Prefix, r.Batches)
			continue
		}
		var records uint64
		for _, h := range cp.Heads {
			records += h.TreeSize
		}
		fmt.Fprintf(tw, "  %s\tfinished\t%d batches, %d records in %d partitions, checkpoint %d at %s (%s ago)\n",
			r.Prefix, r.Batches, records, len(cp.Heads), cp.Sequence, cp.Time.Format(time.RFC3339), now.Sub(cp.Time).Round(time.Second))
	}
}
