package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/kafkax"
	"github.com/pcistream/pcistream/schemas"
)

// auditStack starts a fresh embedded stack (Kafka and registry, nothing
// set up) and returns its config.
func auditStack(t *testing.T) config.Config {
	t.Helper()
	s, err := devstack.Start(context.Background(), devstack.WithoutS3())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Config()
}

// auditEvents reads every audit event on cfg's audit topic.
func auditEvents(t *testing.T, cfg config.Config) []schemas.AuditEvent {
	t.Helper()
	ctx := context.Background()
	kopts, err := kafkax.Opts(cfg.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	serde, err := schemas.Open(ctx, cfg.Registry, cfg.Topics)
	if err != nil {
		t.Fatal(err)
	}
	var evs []schemas.AuditEvent
	err = kafkax.ReadStable(ctx, kopts, cfg.Topics.AuditEvents, func(r *kgo.Record) error {
		var ev schemas.AuditEvent
		if err := serde.Decode(ctx, r.Value, &ev); err != nil {
			return err
		}
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func findEvent(evs []schemas.AuditEvent, action string) *schemas.AuditEvent {
	for i := range evs {
		if evs[i].Action == action {
			return &evs[i]
		}
	}
	return nil
}

// TestOperatorActionsAudited runs topology apply, schemas register and keys
// rotate on a fresh stack: the first apply finds no audit schema yet
// (bootstrap) and says so; then each command writes its event with the
// connection's principal as actor and the reason.
func TestOperatorActionsAudited(t *testing.T) {
	cfg := auditStack(t)
	cfg.Keyring = filepath.Join(t.TempDir(), "keyring.json")

	if _, _, err := runTopology(t, &cfg, "apply"); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Fatalf("apply without --reason: %v", err)
	}
	_, errOut, err := runTopology(t, &cfg, "apply", "--reason", "bootstrap the cluster")
	if err != nil || !strings.Contains(errOut, "Not audited") || !strings.Contains(errOut, "bootstrap") {
		t.Fatalf("bootstrap apply: %v\n%s", err, errOut)
	}
	if _, errOut, err := runCmd(t, newSchemasCmd(&cfg), "register", "--reason", "register the schemas"); err != nil {
		t.Fatalf("schemas register: %v\n%s", err, errOut)
	}
	if _, errOut, err := runTopology(t, &cfg, "apply", "--partitions", "4", "--reason", "CHG-9 more partitions"); err != nil {
		t.Fatalf("apply --partitions 4: %v\n%s", err, errOut)
	}
	if _, _, err := runCmd(t, newKeysCmd(&cfg), "init"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCmd(t, newKeysCmd(&cfg), "rotate"); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Fatalf("rotate without --reason: %v", err)
	}
	if _, errOut, err := runCmd(t, newKeysCmd(&cfg), "rotate", "--reason", "CHG-10 yearly rotation"); err != nil {
		t.Fatalf("keys rotate: %v\n%s", err, errOut)
	}

	evs := auditEvents(t, cfg)
	for action, reason := range map[string]string{
		"schemas_register": "register the schemas",
		"topology_apply":   "CHG-9 more partitions",
		"keys_rotate":      "CHG-10 yearly rotation",
	} {
		ev := findEvent(evs, action)
		if ev == nil {
			t.Errorf("no %s event among %d", action, len(evs))
			continue
		}
		if ev.Actor != kafkax.Anonymous || ev.Reason != reason {
			t.Errorf("%s: actor %q reason %q", action, ev.Actor, ev.Reason)
		}
	}
	if ev := findEvent(evs, "keys_rotate"); ev != nil && (ev.Attrs["key_version"] != "2" || ev.Attrs["previous_version"] != "1") {
		t.Errorf("keys_rotate attrs %v", ev.Attrs)
	}
	if ev := findEvent(evs, "topology_apply"); ev != nil && !strings.Contains(ev.Attrs["add-partitions"], cfg.Topics.AuditEvents) {
		t.Errorf("topology_apply attrs %v", ev.Attrs)
	}
	if ev := findEvent(evs, "schemas_register"); ev != nil && !strings.Contains(ev.Attrs[cfg.Topics.AuditEvents+"-value"], "id=") {
		t.Errorf("schemas_register attrs %v", ev.Attrs)
	}
}

// TestKeysRotateFailsClosed: with Kafka unreachable the rotation cannot be
// recorded, so it does not happen (after the write's timeout).
func TestKeysRotateFailsClosed(t *testing.T) {
	cfg := auditedConfig(t)
	cfg.Keyring = filepath.Join(t.TempDir(), "keyring.json")
	cfg.Kafka.Brokers = []string{"127.0.0.1:1"} // the registry answers, Kafka does not
	if _, _, err := runCmd(t, newKeysCmd(&cfg), "init"); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(cfg.Keyring)
	beforeD, _ := os.ReadFile(defaultDetokenizePath(cfg.Keyring))
	_, _, err := runCmd(t, newKeysCmd(&cfg), "rotate", "--reason", "CHG-11")
	if err == nil || !strings.Contains(err.Error(), "nothing rotated") {
		t.Fatalf("rotate with Kafka down: %v", err)
	}
	after, _ := os.ReadFile(cfg.Keyring)
	afterD, _ := os.ReadFile(defaultDetokenizePath(cfg.Keyring))
	if !bytes.Equal(before, after) || !bytes.Equal(beforeD, afterD) {
		t.Fatal("keyrings changed although the rotation was not recorded")
	}
}

// auditedConfig is auditStack with the topics and schemas set up, for tests
// of commands that write audit events.
func auditedConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := auditStack(t)
	if err := devstack.Setup(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestSchemasRegisterBeforeTopology: on a fresh cluster without the audit
// topic, schemas register registers, says it is not audited, and exits 0.
func TestSchemasRegisterBeforeTopology(t *testing.T) {
	cfg := auditStack(t)
	out, errOut, err := runCmd(t, newSchemasCmd(&cfg), "register", "--reason", "bootstrap")
	if err != nil || !strings.Contains(out, cfg.Topics.AuditEvents+"-value") || !strings.Contains(errOut, "Not audited") {
		t.Fatalf("register before topology apply: %v\n%s\n%s", err, out, errOut)
	}
}
