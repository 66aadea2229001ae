package telemetry_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pcistream/pcistream/internal/telemetry"
)

// TestReadyzProbes: /readyz is 200 only when every named probe passes, its
// body names each probe with what it found, and a probe that hangs makes
// the endpoint answer 503 within the probe timeout instead of hanging.
func TestReadyzProbes(t *testing.T) {
	reg := telemetry.NewRegistry()
	reg.SetProbeTimeout(200 * time.Millisecond)
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	get := func() (int, string) {
		resp, err := srv.Client().Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 503 {
		t.Fatalf("no probes: %d %q, want 503", code, body)
	}
	reg.AddStatus("loop", func() (string, error) {
		return "member of group g with no partitions: the other members hold them all", nil
	})
	if code, body := get(); code != 200 || !strings.Contains(body, "ok loop: member of group g with no partitions") {
		t.Fatalf("ready loop: %d %q", code, body)
	}
	release := make(chan struct{})
	defer close(release)
	reg.AddProbe("s3", func(ctx context.Context) (string, error) {
		select {
		case <-release: // a probe that ignores ctx: the endpoint must not wait for it
		}
		return "", errors.New("unreachable")
	})
	code, body := get()
	if code != 503 || !strings.Contains(body, "FAIL s3: probe did not answer within 200ms") || !strings.Contains(body, "ok loop") {
		t.Fatalf("hung probe: %d %q", code, body)
	}
}
