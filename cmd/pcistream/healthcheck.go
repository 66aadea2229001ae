package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/pan"
)

const defaultHealthURL = "http://127.0.0.1:9464/readyz"

// newHealthcheckCmd builds `pcistream healthcheck`, the container health
// probe: the image has no shell, curl or wget, so Docker and compose health
// checks exec the binary itself against its own /readyz. With --wait it is
// also how a script waits for workers it just started.
func newHealthcheckCmd() *cobra.Command {
	var timeout, wait time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck [URL...]",
		Short: "Exit 0 if every URL (default " + defaultHealthURL + ") answers 2xx; for health checks and scripts",
		Long: `Exit 0 if every URL answers 2xx. Without --wait, each URL is asked once (a container
health check); with --wait, each is asked every half second until it answers 2xx or the
wait is over, and a failure says what the endpoint last answered (a /readyz body says what
the worker is waiting for).`,
		Example: `  pcistream healthcheck
  pcistream healthcheck --wait 60s http://127.0.0.1:9464/readyz http://127.0.0.1:9465/readyz`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{defaultHealthURL}
			}
			for _, url := range args {
				if err := probeUntil(cmd.Context(), url, timeout, wait); err != nil {
					return unhealthy{err}
				}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "healthcheck-timeout", 3*time.Second, "give up on one request after this long")
	cmd.Flags().DurationVar(&wait, "wait", 0, "keep asking until 2xx or this long has passed (0: ask once)")
	return cmd
}

// probeUntil asks url until it answers 2xx or wait has passed.
func probeUntil(ctx context.Context, url string, timeout, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := probe(ctx, url, timeout)
		if err == nil || !time.Now().Before(deadline) || errors.Is(err, errBadURL) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

var errBadURL = errors.New("bad URL")

// probe asks url once.
func probe(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w %q: %v", errBadURL, url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %s: %w (is --metrics-addr set and the process running?)", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	// The body is pcistream's own readiness report; it is masked all the
	// same, since health output lands in `docker inspect` and CI logs.
	why, _ := pan.New().MaskString(strings.Join(strings.Fields(string(body)), " "), pan.Last4)
	if why != "" {
		why = ": " + why
	}
	return fmt.Errorf("healthcheck: %s answered %s%s", url, resp.Status, why)
}

// unhealthy is a failed health check: exit 1, as Docker's HEALTHCHECK
// expects (it reserves 2).
type unhealthy struct{ err error }

func (u unhealthy) Error() string { return u.err.Error() }
func (u unhealthy) Unwrap() error { return u.err }

// ExitCode makes the process exit with status 1.
func (unhealthy) ExitCode() int { return 1 }
