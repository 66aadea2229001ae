// Command pcistream keeps payment card data out of an organisation's Kafka
// estate: it tokenizes card numbers and masks them in logs with exactly-once
// semantics, archives a hash-chained, object-locked audit trail in S3, and
// scans Kafka, S3, PostgreSQL and files for leaked PANs.
//
// This package only wires: flags, environment, config file and commands.
// The work lives in processors/ and internal/.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/pcistream/pcistream/internal/pan"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// exitCoder is implemented by errors that choose the process exit code
// (scan: 1 for findings, 2 for errors).
type exitCoder interface {
	ExitCode() int
}

// silencer is implemented by errors whose message was already reported.
type silencer interface {
	Silent() bool
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var s silencer
	if !(errors.As(err, &s) && s.Silent()) {
		// Whatever an error wraps, a PAN never reaches the terminal.
		msg, _ := pan.New().MaskString(err.Error(), pan.First6Last4)
		fmt.Fprintln(stderr, "pcistream:", msg)
	}
	var ec exitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	// Usage and operational errors alike exit 2; 1 is kept for "the command
	// ran and found something" (scan findings, verify defects, an unhealthy
	// healthcheck), which those commands choose with ExitCode.
	return 2
}
