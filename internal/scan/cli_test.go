package scan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pcistream/pcistream/internal/scan"
)

func runCLI(t *testing.T, o scan.CLIOptions, args ...string) (int, error, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if o.Version == "" {
		o.Version = "test"
	}
	code, err := scan.RunCLI(context.Background(), det, o, args, &out, &errb)
	return code, err, out.String(), errb.String()
}

func TestCLIExitCodesAndBaseline(t *testing.T) {
	dir := t.TempDir()
	p1, p2 := visa(t), mc(t)
	writeFile(t, filepath.Join(dir, "a.log"), []byte("x\npaid "+p1+"\n"))
	writeFile(t, filepath.Join(dir, "clean.log"), []byte("nothing here\n"))

	// Clean target: 0.
	code, err, out, _ := runCLI(t, scan.CLIOptions{}, filepath.Join(dir, "clean.log"))
	if code != scan.ExitClean || err != nil || !strings.Contains(out, "no findings") {
		t.Errorf("clean: code %d err %v out %q", code, err, out)
	}
	// Findings: 1, and no PAN in any output.
	code, err, out, errOut := runCLI(t, scan.CLIOptions{Progress: time.Millisecond}, dir)
	if code != scan.ExitFindings || err != nil {
		t.Errorf("findings: code %d err %v", code, err)
	}
	if !strings.Contains(out, "a.log:2") || !strings.Contains(out, last4(p1)) {
		t.Errorf("table should show location and last 4:\n%s", out)
	}
	assertNoPAN(t, "table stdout", []byte(out), p1)
	assertNoPAN(t, "stderr", []byte(errOut), p1)

	// Write a baseline: exit 0, file lists the finding.
	bl := filepath.Join(dir, "..", "baseline.json")
	code, err, _, _ = runCLI(t, scan.CLIOptions{WriteBaseline: bl}, dir)
	if code != scan.ExitClean || err != nil {
		t.Fatalf("write-baseline: code %d err %v", code, err)
	}
	data, _ := os.ReadFile(bl)
	assertNoPAN(t, "baseline file", data, p1)
	b, err := scan.LoadBaseline(bl)
	if err != nil {
		t.Fatalf("baseline: %v", err)
	}
	if b.Len() != 1 {
		t.Fatalf("baseline holds %d findings, want 1", b.Len())
	}
	// With the baseline: accepted, exit 0.
	code, err, out, _ = runCLI(t, scan.CLIOptions{Baseline: bl}, dir)
	if code != scan.ExitClean || err != nil || !strings.Contains(out, "1 accepted by baseline") {
		t.Errorf("baselined: code %d err %v out %q", code, err, out)
	}
	// A new PAN is not in the baseline: exit 1, only the new one shown.
	writeFile(t, filepath.Join(dir, "b.log"), []byte(p2+"\n"))
	code, _, out, _ = runCLI(t, scan.CLIOptions{Baseline: bl, Format: "json"}, dir)
	if code != scan.ExitFindings {
		t.Errorf("new finding: code %d, want 1", code)
	}
	var rep scan.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json output: %v", err)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Last4 != last4(p2) || rep.Summary.Suppressed != 1 {
		t.Errorf("json: %d findings, suppressed %d; want the new one only", len(rep.Findings), rep.Summary.Suppressed)
	}
	assertNoPAN(t, "json", []byte(out), p1, p2)

	// --baseline together with --write-baseline: the new file accepts both.
	bl2 := filepath.Join(dir, "..", "baseline2.json")
	code, _, _, _ = runCLI(t, scan.CLIOptions{Baseline: bl, WriteBaseline: bl2}, dir)
	if b2, err := scan.LoadBaseline(bl2); code != 0 || err != nil || b2.Len() != 2 {
		t.Errorf("rewrite baseline: code %d err %v", code, err)
	}

	// Errors: 2 with a one-line message.
	for name, tc := range map[string]struct {
		o    scan.CLIOptions
		args []string
		want string
	}{
		"no targets":     {args: nil, want: "no targets"},
		"bad scheme":     {args: []string{"ftp://x/y"}, want: "unknown scheme"},
		"bad format":     {o: scan.CLIOptions{Format: "xml"}, args: []string{dir}, want: "--format"},
		"missing path":   {args: []string{filepath.Join(dir, "nope")}, want: "check the path"},
		"bad baseline":   {o: scan.CLIOptions{Baseline: filepath.Join(dir, "a.log")}, args: []string{dir}, want: "not valid JSON"},
		"kafka no topic": {args: []string{"kafka://127.0.0.1:9092"}, want: "missing topic"},
		"kafka bad from": {args: []string{"kafka://h:1/t?from=yesterday"}, want: "RFC 3339"},
		"kafka creds":    {args: []string{"kafka://u:secret@h:1/t"}, want: "--kafka-sasl-username"},
	} {
		code, err, _, _ := runCLI(t, tc.o, tc.args...)
		if code != scan.ExitError || err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: code %d err %v, want 2 and a one-line error containing %q", name, code, err, tc.want)
		}
	}
	// An error in one target and findings in another: 2, findings still shown.
	code, err, out, _ = runCLI(t, scan.CLIOptions{}, dir, filepath.Join(dir, "nope"))
	if code != scan.ExitError || err == nil || !strings.Contains(out, last4(p2)) {
		t.Errorf("mixed: code %d err %v", code, err)
	}
}

// TestSARIF checks the SARIF 2.1.0 shape GitHub code scanning requires.
func TestSARIF(t *testing.T) {
	dir := t.TempDir()
	p := amex(t)
	writeFile(t, filepath.Join(dir, "x.txt"), []byte("\n\n"+p+"\n"))
	ts, _ := scan.ParseTargets([]string{dir})
	c := &collector{}
	if _, err := scan.New(det).Scan(context.Background(), ts, c.add); err != nil {
		t.Fatal(err)
	}
	// Add one finding of every source shape and a posture finding.
	c.fs = append(c.fs,
		scan.Finding{Kind: scan.KindPAN, Source: scan.SourceKafka, Location: "t/0/5 value", Kafka: &scan.KafkaLocation{Topic: "t", Offset: 5, Part: "value"}, Network: "visa", Last4: "1111", Message: "m", Fingerprint: "f1"},
		scan.Finding{Kind: scan.KindPAN, Source: scan.SourceS3, Location: "s3://b/k:3", S3: &scan.S3Location{Bucket: "b", Key: "a b/k.gz", Line: 3}, Network: "visa", Last4: "1111", Message: "m", Fingerprint: "f2"},
		scan.Finding{Kind: scan.KindRLSDisabled, Source: scan.SourcePostgres, Location: "public.cards", Postgres: &scan.PostgresLocation{Database: "d", Schema: "public", Table: "cards"}, Message: "m", Fingerprint: "f3"},
	)
	var out bytes.Buffer
	if err := scan.WriteSARIF(&out, c.fs, "1.2.3"); err != nil {
		t.Fatal(err)
	}
	assertNoPAN(t, "sarif", out.Bytes(), p)
	var doc struct {
		Schema  string `json:"$schema"`
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID               string         `json:"id"`
						ShortDescription map[string]any `json:"shortDescription"`
						Properties       map[string]any `json:"properties"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string            `json:"ruleId"`
				RuleIndex int               `json:"ruleIndex"`
				Level     string            `json:"level"`
				Message   map[string]string `json:"message"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region struct {
							StartLine int `json:"startLine"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
				PartialFingerprints map[string]string `json:"partialFingerprints"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != "2.1.0" || !strings.Contains(doc.Schema, "sarif-2.1.0") || len(doc.Runs) != 1 {
		t.Fatalf("not a SARIF 2.1.0 log: version %q schema %q runs %d", doc.Version, doc.Schema, len(doc.Runs))
	}
	run := doc.Runs[0]
	if run.Tool.Driver.Name == "" || len(run.Tool.Driver.Rules) != 2 {
		t.Fatalf("driver: %+v", run.Tool.Driver)
	}
	for _, r := range run.Tool.Driver.Rules {
		if r.ShortDescription["text"] == "" || r.Properties["security-severity"] == nil {
			t.Errorf("rule %s lacks description or security-severity", r.ID)
		}
	}
	if len(run.Results) != 4 {
		t.Fatalf("results: %d, want 4", len(run.Results))
	}
	for i, r := range run.Results {
		rule := run.Tool.Driver.Rules[r.RuleIndex]
		if rule.ID != r.RuleID || r.Message["text"] == "" || len(r.Locations) != 1 || r.PartialFingerprints["pcistreamFingerprint/v1"] == "" {
			t.Errorf("result %d incomplete: %+v", i, r)
			continue
		}
		loc := r.Locations[0].PhysicalLocation
		if loc.ArtifactLocation.URI == "" || loc.Region.StartLine < 1 || strings.Contains(loc.ArtifactLocation.URI, " ") {
			t.Errorf("result %d location: %+v", i, loc)
		}
	}
	if r := run.Results[0]; r.Locations[0].PhysicalLocation.Region.StartLine != 3 || r.Level != "error" {
		t.Errorf("file result: line %d level %s, want 3 error", r.Locations[0].PhysicalLocation.Region.StartLine, r.Level)
	}
	if r := run.Results[3]; r.RuleID != scan.RuleRLSDisabled || r.Level != "warning" {
		t.Errorf("posture result: %s %s", r.RuleID, r.Level)
	}
}
