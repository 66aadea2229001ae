package scan

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
)

// Baseline is a set of accepted findings, by fingerprint, so a scan can gate
// CI from day one: known findings are suppressed, new ones fail the build.
// The file is JSON; entries keep the kind and location (never a PAN) so a
// reviewer can see what was accepted.
type Baseline struct {
	Version  int             `json:"version"`
	Findings []BaselineEntry `json:"findings"`

	set map[string]struct{}
}

// BaselineEntry is one accepted finding.
type BaselineEntry struct {
	Fingerprint string `json:"fingerprint"`
	Kind        Kind   `json:"kind"`
	Location    string `json:"location"`
	Last4       string `json:"last4,omitempty"`
}

// NewBaseline returns a baseline accepting every finding in fs.
func NewBaseline(fs []Finding) *Baseline {
	b := &Baseline{Version: 1, Findings: []BaselineEntry{}}
	seen := map[string]bool{}
	for _, f := range fs {
		if seen[f.Fingerprint] {
			continue
		}
		seen[f.Fingerprint] = true
		b.Findings = append(b.Findings, BaselineEntry{Fingerprint: f.Fingerprint, Kind: f.Kind, Location: f.Location, Last4: f.Last4})
	}
	sort.Slice(b.Findings, func(i, j int) bool {
		if b.Findings[i].Location != b.Findings[j].Location {
			return b.Findings[i].Location < b.Findings[j].Location
		}
		return b.Findings[i].Fingerprint < b.Findings[j].Fingerprint
	})
	b.index()
	return b
}

// LoadBaseline reads a baseline file written by WriteFile.
func LoadBaseline(path string) (*Baseline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w (create one with --write-baseline)", err)
	}
	var b Baseline
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("baseline %s is not valid JSON: %w (regenerate it with --write-baseline)", path, err)
	}
	if b.Version != 1 {
		return nil, fmt.Errorf("baseline %s has version %d, want 1 (regenerate it with --write-baseline)", path, b.Version)
	}
	b.index()
	return &b, nil
}

func (b *Baseline) index() {
	b.set = make(map[string]struct{}, len(b.Findings))
	for _, e := range b.Findings {
		b.set[e.Fingerprint] = struct{}{}
	}
}

// Contains reports whether the fingerprint is accepted.
func (b *Baseline) Contains(fingerprint string) bool {
	if b == nil {
		return false
	}
	if b.set == nil {
		b.index()
	}
	_, ok := b.set[fingerprint]
	return ok
}

// Len is the number of accepted findings.
func (b *Baseline) Len() int { return len(b.Findings) }

// WriteFile writes the baseline as indented JSON.
func (b *Baseline) WriteFile(path string) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write baseline: %w", err)
	}
	return nil
}
