package main

import (
	"bytes"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestErrorMessages runs the common mistakes through the real command line
// and checks what a user sees: one line, naming what failed and the fix, no
// repeated prefixes, no parser or protocol internals, never a PAN.
func TestErrorMessages(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String() // nothing listens here once closed
	ln.Close()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	const testPAN = "4111111111111111"

	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"bad int flag", []string{"run", "tokenizer", "--max-poll-records", "abc"}, 2,
			[]string{`--max-poll-records: "abc" is not a valid int`, "pcistream run tokenizer --help"}},
		{"bad duration flag", []string{"run", "tokenizer", "--idempotency-window", "3x"}, 2,
			[]string{`--idempotency-window: "3x" is not a valid duration`}},
		{"bad policy", []string{"mask", "--policy", "nope"}, 2,
			[]string{"--policy: unknown masking policy", "first6last4, last4 or full"}},
		{"unknown flag", []string{"scan", "--nope"}, 2, []string{"unknown flag: --nope", "pcistream scan --help"}},
		{"bad scan format", []string{"scan", "-q", "--format", "yaml", dir}, 2, []string{`--format "yaml"`, "table, json or sarif"}},
		{"missing config file", []string{"--config", missing + ".yaml", "keys", "list"}, 2, []string{"config file", "no such file"}},
		{"missing keyring", []string{"keys", "list", "--keyring", missing + ".json"}, 2, []string{"does not exist", "pcistream keys init"}},
		{"bad time", []string{"audit", "export", "--from", "yesterday"}, 2, []string{"--from", "RFC 3339"}},
		{"token with a vowel", []string{"detokenize", "--reason", "ticket-1234", "--token", "tok_v1_" + strings.Repeat("a", 32)}, 2,
			[]string{"--token: not a pcistream token", "character 1 of the body is the letter 'a'"}},
		{"token too short", []string{"detokenize", "--reason", "ticket-1234", "--token", "tok_v1_bcdf"}, 2,
			[]string{"has 4 characters, want 32"}},
		{"token version zero", []string{"detokenize", "--reason", "ticket-1234", "--token", "tok_v0_" + strings.Repeat("b", 32)}, 2,
			[]string{"key version", "from 1"}},
		{"PAN given as token", []string{"detokenize", "--reason", "ticket-1234", "--token", testPAN}, 2,
			[]string{`must start with "tok_v"`}},
		{"detokenize without reason", []string{"detokenize", "--reason", "x", "--token", "tok_v1_" + strings.Repeat("b", 32)}, 2,
			[]string{"detokenize refused: --reason must say why"}},
		{"unhealthy worker", []string{"healthcheck", "http://" + closed + "/readyz"}, 1,
			[]string{"healthcheck: http://" + closed + "/readyz", "is --metrics-addr set"}},
		{"unreachable Kafka", []string{"scan", "-q", "--brokers", closed, "kafka:///logs.sanitized"}, 2,
			[]string{"cannot reach Kafka at " + closed, "check the broker address"}},
	}
	panRE := regexp.MustCompile(`\d{12,19}`)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tc.args, strings.NewReader(""), &out, &errOut)
			msg := strings.TrimRight(errOut.String(), "\n")
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, msg)
			}
			if strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "pcistream: ") {
				t.Fatalf("want one line starting with %q, got %q", "pcistream: ", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q lacks %q", msg, w)
				}
			}
			for _, noise := range []string{"strconv.", "https response error", "RequestID"} {
				if strings.Contains(msg, noise) {
					t.Errorf("%q has protocol noise %q", msg, noise)
				}
			}
			if w := repeatedPrefix(msg); w != "" {
				t.Errorf("%q repeats the prefix %q", msg, w)
			}
			if panRE.MatchString(msg) {
				t.Errorf("a long digit run reached the error: %q", panRE.ReplaceAllString(msg, "<digits>"))
			}
		})
	}
}

// repeatedPrefix returns a word that starts two consecutive ": "-separated
// parts of msg ("detokenize: detokenize refused"), or "".
func repeatedPrefix(msg string) string {
	parts := strings.Split(msg, ": ")
	first := func(s string) string { return strings.ToLower(strings.Fields(s + " x")[0]) }
	for i := 1; i+1 < len(parts); i++ {
		if first(parts[i]) == first(parts[i+1]) {
			return first(parts[i])
		}
	}
	return ""
}

func TestRepeatedPrefix(t *testing.T) {
	for msg, want := range map[string]string{
		"pcistream: detokenize: detokenize refused: x": "detokenize",
		"pcistream: scan: scan kafka:///t: down":       "scan",
		"pcistream: detokenize refused: --reason":      "",
	} {
		if got := repeatedPrefix(msg); got != want {
			t.Errorf("repeatedPrefix(%q) = %q, want %q", msg, got, want)
		}
	}
}

// TestHelpShowsOwnFlagsFirst checks a command's help lists its own flags,
// then the shared ones under their group headings.
func TestHelpShowsOwnFlagsFirst(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"run", "tokenizer", "--help"}, strings.NewReader(""), &out, &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	h := out.String()
	order := []string{"Flags:", "--max-poll-records", "Global flags", "Kafka:", "--brokers", "Schema registry:", "S3 (audit trail):", "Topics:", "Logging and metrics:", "General:", "--keyring"}
	at := 0
	for _, w := range order {
		i := strings.Index(h[at:], w)
		if i < 0 {
			t.Fatalf("help lacks %q after position %d:\n%s", w, at, h)
		}
		at += i
	}
	if own := h[:strings.Index(h, "Global flags")]; strings.Contains(own, "--brokers") {
		t.Errorf("shared flags listed among the command's own:\n%s", own)
	}
}
