// Package topology declares every Kafka topic pcistream uses (partitions,
// replication factor, cleanup policy, retention, min.insync.replicas and
// optional ACLs) and reconciles a cluster with that declaration through kadm.
//
// Reconciliation only ever adds: it creates missing topics and ACLs, sets
// drifted configs and raises partition counts. It never deletes a topic or an
// ACL and never shrinks a topic (Kafka cannot), reporting such differences as
// conflicts for a human to resolve.
package topology

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pcistream/pcistream/internal/config"
)

//go:embed topics.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded default spec file, for `pcistream topology
// show` style output or as a starting point for a custom --file.
func DefaultYAML() []byte { return slices.Clone(defaultYAML) }

// Well-known topic config keys.
const (
	ConfigCleanupPolicy = "cleanup.policy"
	ConfigRetentionMS   = "retention.ms"
	ConfigMinISR        = "min.insync.replicas"
)

// Topic is the desired state of one topic.
type Topic struct {
	// Name is the topic name.
	Name string
	// Partitions is the desired partition count. Apply raises it; it never
	// lowers it.
	Partitions int32
	// ReplicationFactor is the replica count used when creating the topic.
	// A differing factor on an existing topic is a conflict: changing it
	// needs a partition reassignment, which this package does not do.
	ReplicationFactor int16
	// Configs are topic configs (cleanup.policy, retention.ms,
	// min.insync.replicas, ...). Only the keys listed are managed; other
	// keys on the cluster are left alone.
	Configs map[string]string
	// CoPartitionedWith names another topic of the spec that must have the
	// same partition count (the tokenizer's state topic must match its
	// input so a partition's state lives with the partition).
	CoPartitionedWith string
}

// ACL is one access-control entry: Permission for Principal from Host to
// perform each of Operations on a resource.
type ACL struct {
	// Principal is e.g. "User:tokenizer".
	Principal string
	// Host is the client host the entry applies to; "*" for any.
	Host string
	// Resource is topic, group, transactional-id or cluster.
	Resource string
	// Name is the resource name (ignored for cluster).
	Name string
	// Pattern is literal or prefixed.
	Pattern string
	// Operations are Kafka ACL operations: read, write, describe, create,
	// alter, describe_configs, alter_configs, idempotent_write, all, ...
	Operations []string
	// Permission is allow or deny.
	Permission string
}

// Spec is a whole declared topology.
type Spec struct {
	Topics []Topic
	ACLs   []ACL
}

// fileSpec is the YAML form of a spec file.
type fileSpec struct {
	Defaults struct {
		Partitions        int32             `yaml:"partitions"`
		ReplicationFactor int16             `yaml:"replication_factor"`
		Configs           map[string]string `yaml:"configs"`
	} `yaml:"defaults"`
	Topics []fileTopic `yaml:"topics"`
	ACLs   []fileACL   `yaml:"acls"`
}

type fileTopic struct {
	Role              string            `yaml:"role"`
	Name              string            `yaml:"name"`
	Partitions        int32             `yaml:"partitions"`
	ReplicationFactor int16             `yaml:"replication_factor"`
	Retention         string            `yaml:"retention"`
	CoPartitionedWith string            `yaml:"co_partitioned_with"`
	Configs           map[string]string `yaml:"configs"`
}

type fileACL struct {
	Principal  string   `yaml:"principal"`
	Host       string   `yaml:"host"`
	Resource   string   `yaml:"resource"`
	Role       string   `yaml:"role"`
	Name       string   `yaml:"name"`
	Pattern    string   `yaml:"pattern"`
	Operations []string `yaml:"operations"`
	Permission string   `yaml:"permission"`
}

// roleName maps a spec role to its name in t; ok is false for an unknown role.
func roleName(t config.Topics, role string) (string, bool) {
	switch role {
	case "payments_raw":
		return t.PaymentsRaw, true
	case "payments_tokenized":
		return t.PaymentsTokenized, true
	case "payments_dlq":
		return t.PaymentsDLQ, true
	case "logs_raw":
		return t.LogsRaw, true
	case "logs_sanitized":
		return t.LogsSanitized, true
	case "logs_dlq":
		return t.LogsDLQ, true
	case "audit_events":
		return t.AuditEvents, true
	case "vault":
		return t.Vault, true
	case "idempotency":
		return t.Idempotency, true
	case "tokenizer_repartition":
		if t.Idempotency == "" && t.TokenizerRepartition == "" {
			return "", true
		}
		return t.RepartitionTopic(), true
	case "gateway_idempotency":
		return t.GatewayIdempotency, true
	case "audit_checkpoints":
		return t.AuditCheckpoints, true
	}
	return "", false
}

// Default returns the embedded default spec with each role's topic named as
// in t; an empty name in t keeps the spec's default name.
func Default(t config.Topics) (Spec, error) {
	// The embedded file's names are only the defaults: the configured names
	// always win, silently.
	s, err := parse(defaultYAML, t, false)
	if err != nil {
		return Spec{}, fmt.Errorf("embedded topics.yaml: %w", err)
	}
	return s, nil
}

// Load reads a spec file. A topic with a role takes its name from the file,
// or else the role's default name; use LoadNamed to follow configured names.
func Load(path string) (Spec, error) { return LoadNamed(path, config.Topics{}) }

// LoadNamed reads a spec file in which a topic with a role is named as in
// names (the --topic-* flags), falling back to the file's name and then the
// role's default name.
func LoadNamed(path string, names config.Topics) (Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, fmt.Errorf("topology spec: %w", err)
	}
	s, err := Parse(b, names)
	if err != nil {
		return Spec{}, fmt.Errorf("topology spec %s: %w", path, err)
	}
	return s, nil
}

// Parse parses a spec in YAML form. A topic (or ACL) with a role is named from
// names when the matching field is set, else from its own name field, else
// from the role's default name. A role whose name field disagrees with a set
// field of names is an error: the processors use the configured name, so the
// spec must not create another. The result is validated.
func Parse(b []byte, names config.Topics) (Spec, error) { return parse(b, names, true) }

func parse(b []byte, names config.Topics, strict bool) (Spec, error) {
	var f fileSpec
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return Spec{}, fmt.Errorf("parse YAML: %w", err)
	}
	defaults := config.DefaultTopics()
	resolve := func(role, name string) (string, error) {
		if role == "" {
			return name, nil
		}
		n, ok := roleName(names, role)
		if !ok {
			return "", fmt.Errorf("unknown role %q (known: payments_raw, payments_tokenized, payments_dlq, logs_raw, logs_sanitized, logs_dlq, audit_events, vault, idempotency, gateway_idempotency, audit_checkpoints)", role)
		}
		if n != "" {
			if strict && name != "" && name != n {
				return "", fmt.Errorf("role %s is named %q in the spec but %q in the configuration (--topic-* flags), which the processors use: drop name: from the spec or change the flag", role, name, n)
			}
			return n, nil
		}
		if name != "" {
			return name, nil
		}
		n, _ = roleName(defaults, role)
		return n, nil
	}

	var s Spec
	roles := make(map[string]string) // role -> resolved name
	for i, ft := range f.Topics {
		name, err := resolve(ft.Role, ft.Name)
		if err != nil {
			return Spec{}, fmt.Errorf("topic #%d: %w", i+1, err)
		}
		if ft.Role != "" {
			roles[ft.Role] = name
		}
		t := Topic{
			Name:              name,
			Partitions:        cmpOr(ft.Partitions, f.Defaults.Partitions),
			ReplicationFactor: cmpOr(ft.ReplicationFactor, f.Defaults.ReplicationFactor),
			Configs:           make(map[string]string),
			CoPartitionedWith: ft.CoPartitionedWith,
		}
		for k, v := range f.Defaults.Configs {
			t.Configs[k] = v
		}
		for k, v := range ft.Configs {
			t.Configs[k] = v
		}
		if ft.Retention != "" {
			if _, dup := ft.Configs[ConfigRetentionMS]; dup {
				return Spec{}, fmt.Errorf("topic %q: set either retention or configs.retention.ms, not both", name)
			}
			ms, err := ParseRetention(ft.Retention)
			if err != nil {
				return Spec{}, fmt.Errorf("topic %q: %w", name, err)
			}
			t.Configs[ConfigRetentionMS] = strconv.FormatInt(ms, 10)
		}
		if _, ok := t.Configs[ConfigMinISR]; !ok && t.ReplicationFactor > 0 {
			t.Configs[ConfigMinISR] = strconv.Itoa(int(autoMinISR(t.ReplicationFactor)))
		}
		s.Topics = append(s.Topics, t)
	}
	// co_partitioned_with may name a role or a topic.
	for i := range s.Topics {
		if n, ok := roles[s.Topics[i].CoPartitionedWith]; ok {
			s.Topics[i].CoPartitionedWith = n
		}
	}
	for i, fa := range f.ACLs {
		name, err := resolve(fa.Role, fa.Name)
		if err != nil {
			return Spec{}, fmt.Errorf("acl #%d: %w", i+1, err)
		}
		s.ACLs = append(s.ACLs, ACL{
			Principal:  fa.Principal,
			Host:       cmpOr(fa.Host, "*"),
			Resource:   strings.ToLower(fa.Resource),
			Name:       name,
			Pattern:    strings.ToLower(cmpOr(fa.Pattern, "literal")),
			Operations: fa.Operations,
			Permission: strings.ToLower(cmpOr(fa.Permission, "allow")),
		})
	}
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	return s, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// autoMinISR is the min.insync.replicas that keeps acks=all writes durable
// while tolerating one broker down: 2 from RF 3 up, else 1.
func autoMinISR(rf int16) int16 {
	if rf >= 3 {
		return 2
	}
	return 1
}

// WithReplicationFactor returns a copy of s where every topic has replication
// factor rf and min.insync.replicas suited to it (2 from RF 3 up, else 1).
// It is the one knob to move the default spec from a single-node stack to a
// production cluster; for anything finer, write a spec file.
func (s Spec) WithReplicationFactor(rf int16) Spec {
	out := s.clone()
	for i := range out.Topics {
		out.Topics[i].ReplicationFactor = rf
		out.Topics[i].Configs[ConfigMinISR] = strconv.Itoa(int(autoMinISR(rf)))
	}
	return out
}

// WithPartitions returns a copy of s where every topic has n partitions.
func (s Spec) WithPartitions(n int32) Spec {
	out := s.clone()
	for i := range out.Topics {
		out.Topics[i].Partitions = n
	}
	return out
}

func (s Spec) clone() Spec {
	out := Spec{Topics: make([]Topic, len(s.Topics)), ACLs: slices.Clone(s.ACLs)}
	for i, t := range s.Topics {
		t.Configs = cloneMap(t.Configs)
		out.Topics[i] = t
	}
	return out
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Topic returns the spec's topic called name.
func (s Spec) Topic(name string) (Topic, bool) {
	for _, t := range s.Topics {
		if t.Name == name {
			return t, true
		}
	}
	return Topic{}, false
}

// Validate reports every mistake in s at once.
func (s Spec) Validate() error {
	var errs []error
	seen := make(map[string]bool)
	for _, t := range s.Topics {
		if err := validateTopicName(t.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[t.Name] {
			errs = append(errs, fmt.Errorf("topic %q: declared twice", t.Name))
		}
		seen[t.Name] = true
		if t.Partitions < 1 {
			errs = append(errs, fmt.Errorf("topic %q: partitions must be at least 1, got %d", t.Name, t.Partitions))
		}
		if t.ReplicationFactor < 1 {
			errs = append(errs, fmt.Errorf("topic %q: replication factor must be at least 1, got %d", t.Name, t.ReplicationFactor))
		}
		if v, ok := t.Configs[ConfigCleanupPolicy]; ok {
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "delete" && p != "compact" {
					errs = append(errs, fmt.Errorf("topic %q: cleanup.policy %q: want delete, compact or compact,delete", t.Name, v))
					break
				}
			}
		}
		if v, ok := t.Configs[ConfigRetentionMS]; ok {
			if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < -1 {
				errs = append(errs, fmt.Errorf("topic %q: retention.ms %q: want milliseconds or -1 for infinite", t.Name, v))
			}
		}
		if v, ok := t.Configs[ConfigMinISR]; ok {
			n, err := strconv.Atoi(v)
			switch {
			case err != nil || n < 1:
				errs = append(errs, fmt.Errorf("topic %q: min.insync.replicas %q: want a positive integer", t.Name, v))
			case t.ReplicationFactor > 0 && n > int(t.ReplicationFactor):
				errs = append(errs, fmt.Errorf("topic %q: min.insync.replicas %d exceeds replication factor %d: every acks=all write would fail", t.Name, n, t.ReplicationFactor))
			}
		}
	}
	for _, t := range s.Topics {
		if t.CoPartitionedWith == "" {
			continue
		}
		o, ok := s.Topic(t.CoPartitionedWith)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("topic %q: co_partitioned_with %q is not in the spec", t.Name, t.CoPartitionedWith))
		case o.Partitions != t.Partitions:
			errs = append(errs, fmt.Errorf("topic %q has %d partitions but must match %q (%d): they are co-partitioned", t.Name, t.Partitions, o.Name, o.Partitions))
		}
	}
	for i, a := range s.ACLs {
		if _, err := a.builder(); err != nil {
			errs = append(errs, fmt.Errorf("acl #%d (%s): %w", i+1, a, err))
		}
	}
	return errors.Join(errs...)
}

// validateTopicName applies Kafka's topic name rules.
func validateTopicName(n string) error {
	if n == "" {
		return errors.New("topic with an empty name: set name or a known role")
	}
	if len(n) > 249 || n == "." || n == ".." {
		return fmt.Errorf("topic %q: invalid name", n)
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topic %q: invalid character %q (allowed: letters, digits, '.', '_', '-')", n, r)
		}
	}
	return nil
}

// ParseRetention parses a retention as Kafka milliseconds. It accepts
// "infinite" (or -1), a count of days ("7d"), or a Go duration ("36h",
// "90m").
func ParseRetention(s string) (int64, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "infinite", "forever", "-1":
		return -1, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("retention %q: want e.g. 7d, 36h or infinite", s)
		}
		return n * int64(24*time.Hour/time.Millisecond), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("retention %q: want e.g. 7d, 36h or infinite", s)
	}
	return d.Milliseconds(), nil
}

// FormatRetention renders retention.ms the way a human reads it.
func FormatRetention(ms string) string {
	n, err := strconv.ParseInt(ms, 10, 64)
	switch {
	case err != nil:
		return ms
	case n < 0:
		return "infinite"
	case n > 0 && n%(24*3600*1000) == 0:
		return strconv.FormatInt(n/(24*3600*1000), 10) + "d"
	default:
		return (time.Duration(n) * time.Millisecond).String()
	}
}
