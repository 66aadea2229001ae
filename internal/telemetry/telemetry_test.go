package telemetry_test

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pcistream/pcistream/internal/telemetry"
)

func TestEndpoints(t *testing.T) {
	reg := telemetry.NewRegistry()
	c := telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "pcistream_test_total", Help: "t"}))
	// A second registration returns the first collector, so processors in
	// one process share metric families.
	c2 := telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "pcistream_test_total", Help: "t"}))
	c.Inc()
	c2.Inc()
	ready := errors.New("joining group")
	reg.AddReadiness("loop", func() error { return ready })
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "pcistream_test_total 2") {
		t.Fatalf("/metrics %d: %.200s", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "joining group") {
		t.Fatalf("/readyz %d %q, want 503 with the reason", code, body)
	}
	ready = nil
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz %d once ready", code)
	}
}
