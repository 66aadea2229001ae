package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/pcistream/pcistream/internal/config"
)

// runTopology runs `topology ARGS...` against cfg and returns stdout, stderr
// and the command's error.
func runTopology(t *testing.T, cfg *config.Config, args ...string) (string, string, error) {
	t.Helper()
	cmd := newTopologyCmd(cfg)
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func TestTopologyCommand(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := config.Default()
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.Topics.AuditEvents = "acme.audit" // names follow --topic-* flags
	reg := srfake.New()                   // no schemas: apply is not audited (bootstrap)
	defer reg.Close()
	cfg.Registry.URL = reg.URL()

	out, _, err := runTopology(t, &cfg, "diff")
	if err != nil {
		t.Fatalf("diff: %v", err)
	}
	if !strings.Contains(out, "+ create") || !strings.Contains(out, "acme.audit") || !strings.Contains(out, "Plan: 12 to create") {
		t.Fatalf("diff output:\n%s", out)
	}

	_, _, err = runTopology(t, &cfg, "apply", "--dry-run")
	if err != nil {
		t.Fatalf("apply --dry-run: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	td, err := adm.ListTopics(kadm.WithAuthorizedOps(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	if td.Has("acme.audit") {
		t.Fatal("--dry-run created topics")
	}

	out, errOut, err := runTopology(t, &cfg, "apply", "--reason", "test")
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "+ create") || !strings.Contains(errOut, "Applied: 12 created") || !strings.Contains(errOut, "Not audited") {
		t.Fatalf("apply output:\n%s\n%s", out, errOut)
	}
	td, err = adm.ListTopics(kadm.WithAuthorizedOps(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	if !td.Has("acme.audit") || td.Has("audit.events") {
		t.Fatalf("topics after apply: %v", td.Names())
	}

	_, errOut, err = runTopology(t, &cfg, "apply", "--reason", "test")
	if err != nil || !strings.Contains(errOut, "Nothing to apply") {
		t.Fatalf("second apply: %v\n%s", err, errOut)
	}

	// A spec file wanting fewer partitions than exist: conflict, non-zero exit.
	spec := filepath.Join(t.TempDir(), "topics.yaml")
	if err := os.WriteFile(spec, []byte("defaults: {partitions: 1, replication_factor: 1}\ntopics:\n  - role: audit_events\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err = runTopology(t, &cfg, "apply", "--file", spec, "--reason", "test")
	if err == nil || !strings.Contains(err.Error(), "conflict") || !strings.Contains(out, "! conflict") {
		t.Fatalf("shrink via --file: err=%v\n%s", err, out)
	}

	// --partitions grows every topic.
	if _, errOut, err := runTopology(t, &cfg, "apply", "--partitions", "4", "--reason", "test"); err != nil {
		t.Fatalf("apply --partitions 4: %v\n%s", err, errOut)
	}
	td, err = adm.ListTopics(kadm.WithAuthorizedOps(context.Background()), "acme.audit")
	if err != nil || len(td["acme.audit"].Partitions) != 4 {
		t.Fatalf("acme.audit partitions after --partitions 4: %v %d", err, len(td["acme.audit"].Partitions))
	}
}

func TestTopologyShow(t *testing.T) {
	cfg := config.Default()
	out, _, err := runTopology(t, &cfg, "show")
	if err != nil || !strings.Contains(out, "pci.vault") {
		t.Fatalf("show: %v\n%s", err, out)
	}
}

func TestHealthcheckCommand(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !ready {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	run := func() error {
		cmd := newHealthcheckCmd()
		cmd.SetArgs([]string{srv.URL + "/readyz"})
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		return cmd.ExecuteContext(context.Background())
	}
	if err := run(); err != nil {
		t.Fatalf("ready server: %v", err)
	}
	ready = false
	if err := run(); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("unready server: %v", err)
	}
}
