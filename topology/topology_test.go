package topology

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
)

// newCluster starts a single-broker kfake cluster (real Kafka wire protocol)
// and returns an admin client for it.
func newCluster(t *testing.T) *kadm.Client {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func defaultSpec(t *testing.T) Spec {
	t.Helper()
	s, err := Default(config.DefaultTopics())
	if err != nil {
		t.Fatalf("Default: %v", err)
	}
	return s
}

// kinds counts changes per kind.
func kinds(cs []Change) map[string]int {
	m := make(map[string]int)
	for _, c := range cs {
		m[c.Kind]++
	}
	return m
}

func changeFor(cs []Change, topic, kind string) (Change, bool) {
	for _, c := range cs {
		if c.Topic == topic && c.Kind == kind {
			return c, true
		}
	}
	return Change{}, false
}

func topicConfig(t *testing.T, ctx context.Context, adm *kadm.Client, topic, key string) string {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatalf("describe configs %s: %v", topic, err)
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == key && c.Value != nil {
				return *c.Value
			}
		}
	}
	return ""
}

func partitions(t *testing.T, ctx context.Context, adm *kadm.Client, topic string) int {
	t.Helper()
	td, err := adm.ListTopics(kadm.WithAuthorizedOps(ctx), topic)
	if err != nil {
		t.Fatalf("list %s: %v", topic, err)
	}
	d, ok := td[topic]
	if !ok || d.Err != nil {
		return 0
	}
	return len(d.Partitions)
}

func TestDefaultSpec(t *testing.T) {
	s := defaultSpec(t)
	want := []string{"payments.raw", "payments.tokenized", "payments.dlq", "logs.raw", "logs.sanitized", "logs.dlq",
		"audit.events", "pci.vault", "pcistream.tokenizer.idempotency", "pcistream.tokenizer.idempotency.repartition", "audit.checkpoints", "pcistream.gateway.idempotency"}
	if len(s.Topics) != len(want) {
		t.Fatalf("got %d topics, want %d", len(s.Topics), len(want))
	}
	for _, n := range want {
		tp, ok := s.Topic(n)
		if !ok {
			t.Fatalf("topic %s missing from default spec", n)
		}
		if tp.Partitions != 3 || tp.ReplicationFactor != 1 || tp.Configs[ConfigMinISR] != "1" {
			t.Errorf("%s: partitions=%d rf=%d minisr=%s, want 3/1/1", n, tp.Partitions, tp.ReplicationFactor, tp.Configs[ConfigMinISR])
		}
	}
	checks := []struct{ topic, key, want string }{
		{"payments.raw", ConfigRetentionMS, "604800000"},
		{"logs.raw", ConfigRetentionMS, "604800000"},
		{"payments.dlq", ConfigRetentionMS, "2592000000"},
		{"logs.dlq", ConfigRetentionMS, "2592000000"},
		{"audit.events", ConfigRetentionMS, "2592000000"},
		{"pci.vault", ConfigRetentionMS, "-1"},
		{"pci.vault", ConfigCleanupPolicy, "compact"},
		{"pcistream.tokenizer.idempotency", ConfigCleanupPolicy, "compact,delete"},
		{"pcistream.tokenizer.idempotency", ConfigRetentionMS, "90000000"}, // 25h: the window plus skew
		{"payments.raw", ConfigCleanupPolicy, "delete"},
	}
	for _, c := range checks {
		tp, _ := s.Topic(c.topic)
		if got := tp.Configs[c.key]; got != c.want {
			t.Errorf("%s %s = %q, want %q", c.topic, c.key, got, c.want)
		}
	}
	if tp, _ := s.Topic("pcistream.tokenizer.idempotency"); tp.CoPartitionedWith != "payments.raw" {
		t.Errorf("idempotency co-partitioned with %q, want payments.raw", tp.CoPartitionedWith)
	}
}

func TestDefaultRenamesFromConfig(t *testing.T) {
	names := config.DefaultTopics()
	names.PaymentsRaw = "acme.payments.in"
	names.Vault = "acme.vault"
	s, err := Default(names)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Topic("payments.raw"); ok {
		t.Error("payments.raw still present after renaming")
	}
	v, ok := s.Topic("acme.vault")
	if !ok || v.Configs[ConfigCleanupPolicy] != "compact" {
		t.Errorf("renamed vault missing or not compacted: %+v", v)
	}
	// The co-partitioning link follows the rename.
	if idem, _ := s.Topic("pcistream.tokenizer.idempotency"); idem.CoPartitionedWith != "acme.payments.in" {
		t.Errorf("co_partitioned_with = %q, want the renamed raw topic", idem.CoPartitionedWith)
	}
	// An empty name keeps the default.
	s, err = Default(config.Topics{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Topic("audit.events"); !ok {
		t.Error("empty config.Topics lost the default names")
	}
}

func TestWithReplicationFactor(t *testing.T) {
	s := defaultSpec(t).WithReplicationFactor(3)
	for _, tp := range s.Topics {
		if tp.ReplicationFactor != 3 || tp.Configs[ConfigMinISR] != "2" {
			t.Errorf("%s: rf=%d minisr=%s, want 3/2", tp.Name, tp.ReplicationFactor, tp.Configs[ConfigMinISR])
		}
	}
	// The original is untouched.
	if tp, _ := defaultSpec(t).Topic("payments.raw"); tp.Configs[ConfigMinISR] != "1" {
		t.Error("WithReplicationFactor mutated its receiver's configs")
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"unknown field": "topics:\n  - name: a\n    partitons: 3\n",
		"unknown role":  "topics:\n  - role: nope\n",
		"no partitions": "topics:\n  - name: a\n    replication_factor: 1\n",
		"bad name":      "defaults: {partitions: 1, replication_factor: 1}\ntopics:\n  - name: 'a b'\n",
		"duplicate":     "defaults: {partitions: 1, replication_factor: 1}\ntopics:\n  - name: a\n  - name: a\n",
		"minisr>rf":     "defaults: {partitions: 1, replication_factor: 1}\ntopics:\n  - name: a\n    configs: {min.insync.replicas: '2'}\n",
		"bad cleanup":   "defaults: {partitions: 1, replication_factor: 1}\ntopics:\n  - name: a\n    configs: {cleanup.policy: shred}\n",
		"bad retention": "defaults: {partitions: 1, replication_factor: 1}\ntopics:\n  - name: a\n    retention: 7 days\n",
		"both retention": "defaults: {partitions: 1, replication_factor: 1}\ntopics:\n  - name: a\n    retention: 7d\n" +
			"    configs: {retention.ms: '1'}\n",
		"co-partition": "defaults: {partitions: 1, replication_factor: 1}\ntopics:\n  - name: a\n  - name: b\n    partitions: 2\n" +
			"    co_partitioned_with: a\n",
		"bad acl op": "defaults: {partitions: 1, replication_factor: 1}\ntopics:\n  - name: a\nacls:\n" +
			"  - {principal: 'User:x', resource: topic, name: a, operations: [fly]}\n",
		"bad acl principal": "defaults: {partitions: 1, replication_factor: 1}\ntopics:\n  - name: a\nacls:\n" +
			"  - {principal: x, resource: topic, name: a, operations: [read]}\n",
	}
	for name, y := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(y), config.Topics{}); err == nil {
				t.Fatalf("Parse accepted an invalid spec:\n%s", y)
			}
		})
	}
}

func TestParseRoleNames(t *testing.T) {
	names := config.DefaultTopics()
	names.PaymentsRaw = "acme.raw"
	y := "defaults: {partitions: 1, replication_factor: 1}\ntopics:\n  - role: payments_raw\n"
	s, err := Parse([]byte(y), names)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Topic("acme.raw"); !ok {
		t.Errorf("role without name did not follow the configured name: %+v", s.Topics)
	}
	// A file naming the role differently from the configuration would make
	// a topic no processor reads.
	y = "defaults: {partitions: 1, replication_factor: 1}\ntopics:\n  - role: payments_raw\n    name: other.raw\n"
	if _, err := Parse([]byte(y), names); err == nil || !strings.Contains(err.Error(), "--topic-") {
		t.Errorf("conflicting role name accepted: %v", err)
	}
	// Without configured names the file's name stands.
	s, err = Parse([]byte(y), config.Topics{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Topic("other.raw"); !ok {
		t.Errorf("file name ignored: %+v", s.Topics)
	}
}

func TestParseRetention(t *testing.T) {
	for in, want := range map[string]int64{"7d": 604800000, "36h": 129600000, "infinite": -1, "-1": -1, "90m": 5400000} {
		got, err := ParseRetention(in)
		if err != nil || got != want {
			t.Errorf("ParseRetention(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "seven", "-3d", "1y"} {
		if _, err := ParseRetention(bad); err == nil {
			t.Errorf("ParseRetention(%q) accepted", bad)
		}
	}
	if got := FormatRetention("604800000"); got != "7d" {
		t.Errorf("FormatRetention = %q", got)
	}
}

func TestLoadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "topics.yaml")
	y := "defaults: {partitions: 6, replication_factor: 3}\ntopics:\n  - role: payments_raw\n  - name: extra\n    partitions: 1\n    retention: 1d\n"
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := s.Topic("payments.raw")
	if !ok || raw.Partitions != 6 || raw.ReplicationFactor != 3 || raw.Configs[ConfigMinISR] != "2" {
		t.Errorf("payments.raw = %+v", raw)
	}
	extra, _ := s.Topic("extra")
	if extra.Partitions != 1 || extra.Configs[ConfigRetentionMS] != "86400000" {
		t.Errorf("extra = %+v", extra)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func TestApplyCreatesThenIsIdempotent(t *testing.T) {
	adm, ctx := newCluster(t), ctxT(t)
	s := defaultSpec(t)

	before, err := Diff(ctx, adm, s)
	if err != nil {
		t.Fatal(err)
	}
	if k := kinds(before); k[KindCreate] != len(s.Topics) || len(before) != len(s.Topics) {
		t.Fatalf("diff on empty cluster: %v, want %d creates", k, len(s.Topics))
	}

	changes, err := Apply(ctx, adm, s)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if k := kinds(changes); k[KindCreate] != len(s.Topics) {
		t.Fatalf("apply: %v", k)
	}
	for _, tp := range s.Topics {
		if n := partitions(t, ctx, adm, tp.Name); n != int(tp.Partitions) {
			t.Errorf("%s has %d partitions, want %d", tp.Name, n, tp.Partitions)
		}
		for k, want := range tp.Configs {
			if got := topicConfig(t, ctx, adm, tp.Name, k); got != want {
				t.Errorf("%s %s = %q, want %q", tp.Name, k, got, want)
			}
		}
	}

	again, err := Apply(ctx, adm, s)
	if err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if k := kinds(again); k[KindOK] != len(s.Topics) || len(again) != len(s.Topics) || Pending(again) {
		var buf bytes.Buffer
		Print(&buf, again)
		t.Fatalf("second apply was not a no-op:\n%s", buf.String())
	}
}

func TestApplyFixesConfigDrift(t *testing.T) {
	adm, ctx := newCluster(t), ctxT(t)
	s := defaultSpec(t)
	if _, err := Apply(ctx, adm, s); err != nil {
		t.Fatal(err)
	}
	// Someone shortens retention on the DLQ and turns compaction off on the vault.
	for topic, kv := range map[string][2]string{
		"payments.dlq": {ConfigRetentionMS, "3600000"},
		"pci.vault":    {ConfigCleanupPolicy, "delete"},
	} {
		rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: kv[0], Value: kadm.StringPtr(kv[1])}}, topic)
		if err != nil || rs[0].Err != nil {
			t.Fatalf("drift %s: %v %v", topic, err, rs)
		}
	}
	diff, err := Diff(ctx, adm, s)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := changeFor(diff, "payments.dlq", KindAlterConfig)
	if !ok || !strings.Contains(c.Detail, "retention.ms: 3600000") || !strings.Contains(c.Detail, "2592000000 (30d)") {
		t.Fatalf("drift on payments.dlq not reported: %+v", diff)
	}
	if _, ok := changeFor(diff, "pci.vault", KindAlterConfig); !ok {
		t.Fatalf("drift on pci.vault not reported: %+v", diff)
	}
	if n := Count(diff, KindAlterConfig); n != 2 {
		t.Errorf("%d alter-config changes, want 2", n)
	}
	if _, err := Apply(ctx, adm, s); err != nil {
		t.Fatal(err)
	}
	if got := topicConfig(t, ctx, adm, "payments.dlq", ConfigRetentionMS); got != "2592000000" {
		t.Errorf("payments.dlq retention.ms = %s after apply", got)
	}
	if got := topicConfig(t, ctx, adm, "pci.vault", ConfigCleanupPolicy); got != "compact" {
		t.Errorf("pci.vault cleanup.policy = %s after apply", got)
	}
	after, err := Diff(ctx, adm, s)
	if err != nil {
		t.Fatal(err)
	}
	if Pending(after) {
		t.Errorf("changes pending after apply: %+v", after)
	}
}

func TestApplyAddsPartitionsNeverShrinks(t *testing.T) {
	adm, ctx := newCluster(t), ctxT(t)
	s := defaultSpec(t)
	if _, err := Apply(ctx, adm, s); err != nil {
		t.Fatal(err)
	}

	grown := s.WithPartitions(6)
	changes, err := Apply(ctx, adm, grown)
	if err != nil {
		t.Fatalf("Apply grow: %v", err)
	}
	if n := Count(changes, KindAddPartitions); n != len(s.Topics) {
		t.Fatalf("%d add-partitions changes, want %d", n, len(s.Topics))
	}
	if n := partitions(t, ctx, adm, "payments.raw"); n != 6 {
		t.Fatalf("payments.raw has %d partitions after grow, want 6", n)
	}

	// The original spec now wants fewer partitions than exist.
	changes, err = Apply(ctx, adm, s)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("shrink: err = %v, want ErrConflict", err)
	}
	if n := Count(changes, KindConflict); n != len(s.Topics) {
		t.Fatalf("%d conflicts, want %d", n, len(s.Topics))
	}
	if c, _ := changeFor(changes, "payments.raw", KindConflict); !strings.Contains(c.Detail, "has 6 partitions") {
		t.Errorf("conflict detail = %q", c.Detail)
	}
	if n := partitions(t, ctx, adm, "payments.raw"); n != 6 {
		t.Fatalf("payments.raw has %d partitions after a shrink request, want 6", n)
	}
}

func TestApplyConflictStillAppliesTheRest(t *testing.T) {
	adm, ctx := newCluster(t), ctxT(t)
	if _, err := adm.CreateTopic(ctx, 5, 1, nil, "payments.raw"); err != nil {
		t.Fatal(err)
	}
	s := defaultSpec(t)
	changes, err := Apply(ctx, adm, s)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	if _, ok := changeFor(changes, "payments.raw", KindConflict); !ok {
		t.Fatal("no conflict for payments.raw")
	}
	// The pre-existing topic still gets its configs, and the others are created.
	if got := topicConfig(t, ctx, adm, "payments.raw", ConfigRetentionMS); got != "604800000" {
		t.Errorf("payments.raw retention.ms = %q", got)
	}
	if n := partitions(t, ctx, adm, "logs.raw"); n != 3 {
		t.Errorf("logs.raw has %d partitions", n)
	}
}

func TestReplicationFactorMismatchIsConflict(t *testing.T) {
	adm, ctx := newCluster(t), ctxT(t)
	s := defaultSpec(t)
	if _, err := Apply(ctx, adm, s); err != nil {
		t.Fatal(err)
	}
	diff, err := Diff(ctx, adm, s.WithReplicationFactor(3))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := changeFor(diff, "audit.events", KindConflict)
	if !ok || !strings.Contains(c.Detail, "replication factor is 1, spec wants 3") {
		t.Fatalf("RF mismatch not reported as conflict: %+v", diff)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	adm, ctx := newCluster(t), ctxT(t)
	s := defaultSpec(t)
	changes, err := Apply(ctx, adm, s, DryRun(true))
	if err != nil {
		t.Fatal(err)
	}
	if Count(changes, KindCreate) != len(s.Topics) {
		t.Fatalf("dry run plan: %v", kinds(changes))
	}
	td, err := adm.ListTopics(kadm.WithAuthorizedOps(ctx))
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range s.Topics {
		if td.Has(tp.Name) {
			t.Errorf("dry run created %s", tp.Name)
		}
	}

	// Dry run on drift and growth leaves the cluster as it was.
	if _, err := Apply(ctx, adm, s); err != nil {
		t.Fatal(err)
	}
	grown := s.WithPartitions(4)
	grown.Topics[0].Configs[ConfigRetentionMS] = "1000"
	changes, err = Apply(ctx, adm, grown, DryRun(true))
	if err != nil {
		t.Fatal(err)
	}
	if !Pending(changes) {
		t.Fatal("dry run reported nothing to do")
	}
	if n := partitions(t, ctx, adm, grown.Topics[0].Name); n != 3 {
		t.Errorf("dry run changed partitions to %d", n)
	}
	if got := topicConfig(t, ctx, adm, grown.Topics[0].Name, ConfigRetentionMS); got != "604800000" {
		t.Errorf("dry run changed retention.ms to %s", got)
	}
}

func TestApplyACLs(t *testing.T) {
	adm, ctx := newCluster(t), ctxT(t)
	y := `
defaults: {partitions: 1, replication_factor: 1}
topics:
  - role: payments_raw
acls:
  - principal: User:tokenizer
    resource: topic
    role: payments_raw
    operations: [read, describe]
  - principal: User:tokenizer
    resource: transactional-id
    name: pcistream-tokenizer
    pattern: prefixed
    operations: [write, describe]
`
	s, err := Parse([]byte(y), config.DefaultTopics())
	if err != nil {
		t.Fatal(err)
	}
	changes, err := Apply(ctx, adm, s)
	if err != nil {
		t.Fatal(err)
	}
	if n := Count(changes, KindCreateACL); n != 2 {
		t.Fatalf("%d create-acl, want 2: %+v", n, changes)
	}
	rs, err := adm.DescribeACLs(ctx, kadm.NewACLs().Topics("payments.raw").Allow("User:tokenizer").AllowHosts("*").
		Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	if err != nil || len(rs) != 1 || len(rs[0].Described) != 1 {
		t.Fatalf("read ACL not on the cluster: %v %+v", err, rs)
	}
	again, err := Apply(ctx, adm, s)
	if err != nil {
		t.Fatal(err)
	}
	if Pending(again) {
		t.Fatalf("second ACL apply not a no-op: %+v", again)
	}
}

func TestPrint(t *testing.T) {
	var buf bytes.Buffer
	Print(&buf, []Change{
		{Topic: "a", Kind: KindCreate, Detail: "partitions=3"},
		{Topic: "b", Kind: KindAlterConfig, Detail: "retention.ms: 1 -> 2"},
		{Topic: "c", Kind: KindOK},
		{Topic: "d", Kind: KindConflict, Detail: "shrink"},
	})
	out := buf.String()
	for _, want := range []string{"+ create", "~ alter-config", "= ok", "! conflict", "Plan: 1 to create, 1 to change, 1 unchanged, 1 conflict(s)."} {
		if !strings.Contains(out, want) {
			t.Errorf("Print output lacks %q:\n%s", want, out)
		}
	}
}
