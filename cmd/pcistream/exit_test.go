package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

// TestUsageErrorsExit2: a missing or unknown subcommand, a missing argument
// and an unknown flag are usage errors: exit 2 with a message that says
// what to type, never the help text and exit 0.
func TestUsageErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run"}, "needs a subcommand: "},
		{[]string{"run", "tokenise"}, `unknown command "tokenise" for "pcistream run": did you mean tokenizer?`},
		{[]string{"keys"}, "needs a subcommand"},
		{[]string{"nope"}, "unknown command"},
		{[]string{"run", "masker", "--no-such-flag"}, "unknown flag"},
		{[]string{"run", "masker", "extra-arg"}, "unknown command"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, strings.NewReader(""), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("pcistream %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, errb.String(), tc.want)
		}
	}
}

// TestUnreachableRegistrySaysUnreachable: a worker whose registry does not
// answer says the registry is unreachable, not that a schema is missing.
func TestUnreachableRegistrySaysUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	var out, errb bytes.Buffer
	code := run([]string{"run", "masker", "--brokers", dead, "--registry-url", "http://" + dead, "--metrics-addr", ""},
		strings.NewReader(""), &out, &errb)
	msg := errb.String()
	want := "schema registry at http://" + dead + " unreachable (connect: connection refused): start `pcistream dev` or check --registry-url"
	if code != 2 || !strings.Contains(msg, want) || strings.Contains(msg, "not registered") || strings.Count(msg, dead) != 1 {
		t.Fatalf("exit %d, stderr %q; want exit 2 and %q, naming the registry once", code, msg, want)
	}
}
