package scan

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Formats WriteReport knows.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatSARIF = "sarif"
)

// WriteReport writes findings and the summary in format: "table", "json" or
// "sarif". version is the tool version recorded in SARIF.
func WriteReport(w io.Writer, format string, fs []Finding, s Summary, version string) error {
	switch format {
	case FormatTable, "":
		return WriteTable(w, fs, s)
	case FormatJSON:
		return WriteJSON(w, fs, s)
	case FormatSARIF:
		return WriteSARIF(w, fs, version)
	}
	return fmt.Errorf("unknown format %q, want table, json or sarif", format)
}

// WriteTable writes a human table of findings followed by a summary line.
func WriteTable(w io.Writer, fs []Finding, s Summary) error {
	if len(fs) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tSOURCE\tLOCATION\tNETWORK\tLAST4\tDETAIL")
		for _, f := range fs {
			network, last4, detail := f.Network, f.Last4, fmt.Sprintf("%d digits, %s", f.Digits, f.Encoding)
			if f.Kind != KindPAN {
				network, last4, detail = "-", "-", f.Message
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Kind, f.Source, f.Location, network, last4, detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	_, err := fmt.Fprintln(w, SummaryLine(s))
	return err
}

// SummaryLine is a one-line account of a scan.
func SummaryLine(s Summary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "scanned %d target(s): %d items, %s in %s", len(s.Targets), s.Items, HumanBytes(s.Bytes), s.Duration.Round(time.Millisecond))
	if s.Findings == 0 {
		b.WriteString("; no findings")
	} else {
		kinds := make([]string, 0, len(s.ByKind))
		for k, n := range s.ByKind {
			kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
		}
		sort.Strings(kinds)
		fmt.Fprintf(&b, "; %d finding(s): %s", s.Findings, strings.Join(kinds, ", "))
	}
	if s.Suppressed > 0 {
		fmt.Fprintf(&b, "; %d accepted by baseline", s.Suppressed)
	}
	for _, t := range s.Targets {
		if t.Error != "" {
			fmt.Fprintf(&b, "; %s FAILED", t.Target)
		}
	}
	return b.String()
}

// HumanBytes formats n as B, KB, MB or GB (powers of 1000).
func HumanBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// Report is the JSON document WriteJSON writes.
type Report struct {
	Findings []Finding `json:"findings"`
	Summary  Summary   `json:"summary"`
}

// WriteJSON writes {"findings": [...], "summary": {...}}.
func WriteJSON(w io.Writer, fs []Finding, s Summary) error {
	if fs == nil {
		fs = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Report{Findings: fs, Summary: s})
}

// SARIF rule ids.
const (
	RulePAN         = "PCISTREAM-PAN"
	RuleRLSDisabled = "PCISTREAM-PG-RLS"
)

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Version        string      `json:"version,omitempty"`
	SemanticVer    string      `json:"semanticVersion,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string            `json:"id"`
	Name                 string            `json:"name"`
	ShortDescription     sarifText         `json:"shortDescription"`
	FullDescription      sarifText         `json:"fullDescription"`
	Help                 sarifText         `json:"help"`
	DefaultConfiguration map[string]string `json:"defaultConfiguration"`
	Properties           map[string]any    `json:"properties"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Level               string            `json:"level"`
	Message             sarifText         `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
	Properties          map[string]any    `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical  `json:"physicalLocation"`
	LogicalLocations []sarifLogical `json:"logicalLocations,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int64 `json:"startLine"`
}

type sarifLogical struct {
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind,omitempty"`
}

var sarifRules = []sarifRule{
	{
		ID:                   RulePAN,
		Name:                 "CardNumberExposed",
		ShortDescription:     sarifText{"Primary account number (card number) stored outside the cardholder data environment"},
		FullDescription:      sarifText{"A Luhn-valid card number in a real IIN range was found in data that should hold none (PCI DSS v4.0 requirement 3.4.1: render PAN unreadable anywhere it is stored)."},
		Help:                 sarifText{"Remove or tokenize the card number at the source (route the producer through pcistream's tokenizer or masker), purge the stored copy, and re-run the scan. The finding shows only the last four digits."},
		DefaultConfiguration: map[string]string{"level": "error"},
		Properties:           map[string]any{"tags": []string{"security", "pci-dss", "cardholder-data"}, "security-severity": "9.0", "precision": "high"},
	},
	{
		ID:                   RuleRLSDisabled,
		Name:                 "PaymentTableWithoutRowLevelSecurity",
		ShortDescription:     sarifText{"PostgreSQL table with card data or a payment-like name has row-level security disabled"},
		FullDescription:      sarifText{"The table holds PAN-like data, or is named like a payment table, and pg_class.relrowsecurity is false, so every role with SELECT reads every row (PCI DSS v4.0 requirement 7.2: restrict access to cardholder data by need to know)."},
		Help:                 sarifText{"ALTER TABLE ... ENABLE ROW LEVEL SECURITY and define policies, or move the data out of the table."},
		DefaultConfiguration: map[string]string{"level": "warning"},
		Properties:           map[string]any{"tags": []string{"security", "pci-dss", "postgresql"}, "security-severity": "6.5", "precision": "medium"},
	},
}

// WriteSARIF writes a SARIF 2.1.0 log for code-scanning dashboards (GitHub
// code scanning accepts it with `github/codeql-action/upload-sarif`). Files
// get repository-relative URIs and line regions; findings in Kafka, S3 and
// PostgreSQL get a URI naming the store plus a logical location.
func WriteSARIF(w io.Writer, fs []Finding, version string) error {
	results := make([]sarifResult, 0, len(fs))
	for _, f := range fs {
		rule, idx, level := RulePAN, 0, "error"
		if f.Kind == KindRLSDisabled {
			rule, idx, level = RuleRLSDisabled, 1, "warning"
		}
		uri, line, lkind := sarifWhere(f)
		loc := sarifLocation{
			PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: uri}, Region: &sarifRegion{StartLine: max(line, 1)}},
			LogicalLocations: []sarifLogical{{FullyQualifiedName: f.Location, Kind: lkind}},
		}
		props := map[string]any{"source": string(f.Source)}
		if f.Network != "" {
			props["network"], props["last4"], props["encoding"] = f.Network, f.Last4, f.Encoding
		}
		results = append(results, sarifResult{
			RuleID:              rule,
			RuleIndex:           idx,
			Level:               level,
			Message:             sarifText{f.Message},
			Locations:           []sarifLocation{loc},
			PartialFingerprints: map[string]string{"pcistreamFingerprint/v1": f.Fingerprint},
			Properties:          props,
		})
	}
	doc := sarifLog{
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Version: "2.1.0",
		Runs: []sarifRun{{
			Tool: sarifTool{Driver: sarifDriver{
				Name:           "pcistream-scan",
				InformationURI: "https://github.com/pcistream/pcistream",
				Version:        version,
				Rules:          sarifRules,
			}},
			Results: results,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// sarifWhere gives a finding's artifact URI, line and logical-location kind.
func sarifWhere(f Finding) (uri string, line int64, kind string) {
	esc := func(s string) string { return (&url.URL{Path: s}).EscapedPath() }
	switch {
	case f.File != nil:
		p := filepath.ToSlash(f.File.Path)
		if filepath.IsAbs(f.File.Path) {
			return "file://" + esc(p), f.File.Line, "file"
		}
		return esc(strings.TrimPrefix(p, "./")), f.File.Line, "file"
	case f.S3 != nil:
		return "s3://" + f.S3.Bucket + "/" + esc(f.S3.Key), f.S3.Line, "object"
	case f.Kafka != nil:
		return fmt.Sprintf("kafka:%s/%d/%d", esc(f.Kafka.Topic), f.Kafka.Partition, f.Kafka.Offset), 1, "record"
	case f.Postgres != nil:
		p := f.Postgres
		u := "postgres:" + esc(p.Database+"/"+p.Schema+"/"+p.Table)
		if p.Column != "" {
			u += "/" + esc(p.Column)
			return u, 1, "column"
		}
		return u, 1, "table"
	}
	return "unknown", 1, ""
}
