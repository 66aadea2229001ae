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
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "pcistream status at %s\n", r.Time.Format(time.RFC3339))
	for _, p := range r.Processors {
		writeProcessor(tw, r.Time, p)
	}
	writeAudit(tw, r.Audit)
	if len(r.Errors) > 0 {
		fmt.Fprintln(tw, "\nnot read:")
		for _, e := range r.Errors {
			fmt.Fprintf(tw, "  %s\n", e)
		}
	}
	return tw.Flush()
}

func writeProcessor(tw io.Writer, now time.Time, p ProcessorStatus) {
	progress := "never"
	if p.LastProgress != nil {
		progress = now.Sub(*p.LastProgress).Round(time.Second).String() + " ago"
	}
	fmt.Fprintf(tw, "\n%s\tgroup %s\t%s\t%d members\tlag %d\tlast progress %s\n",
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
		fmt.Fprintln(tw, "\naudit trail\tno signed checkpoint yet")
		return
	}
	cp := a.Checkpoint
	fmt.Fprintf(tw, "\naudit trail\tnewest checkpoint %d\tat %s (%s ago)\tkey %s (not verified here: run pcistream verify)\n", cp.Sequence, cp.Time.Format(time.RFC3339), a.Age, cp.KeyID)
	for _, h := range cp.Heads {
		fmt.Fprintf(tw, "  %s/%d\tbatch %d\tlast offset %d\t%d records\n", h.Topic, h.Partition, h.Sequence, h.LastOffset, h.TreeSize)
	}
}
