package topology

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Change kinds, in the order Print lists them.
const (
	KindCreate        = "create"         // topic is missing and will be created
	KindAlterConfig   = "alter-config"   // a managed config differs and will be set
	KindAddPartitions = "add-partitions" // the topic has fewer partitions than wanted
	KindCreateACL     = "create-acl"     // an ACL entry is missing and will be created
	KindConflict      = "conflict"       // a difference Apply will not fix (shrink, RF change)
	KindOK            = "ok"             // nothing to do
)

// ErrConflict is returned (wrapped) by Apply when the cluster differs from the
// spec in a way Apply refuses to fix, such as a topic with more partitions
// than declared. Everything else was still applied.
var ErrConflict = errors.New("topology conflict")

// Change is one difference between the spec and the cluster.
type Change struct {
	// Topic is the topic name; for an ACL, the ACL's resource name.
	Topic string
	// Kind is one of the Kind constants.
	Kind string
	// Detail says what differs, for humans.
	Detail string
}

// ApplyOpt configures Apply.
type ApplyOpt func(*applyCfg)

type applyCfg struct {
	dryRun bool
}

// DryRun makes Apply compute and return the changes without making any.
func DryRun(dry bool) ApplyOpt { return func(c *applyCfg) { c.dryRun = dry } }

// step is a Change plus the call that makes it, if Apply may make it.
type step struct {
	Change
	do func(ctx context.Context, adm *kadm.Client) error
}

// Diff compares the cluster with s and returns one or more changes per topic
// (KindOK for a topic that matches) followed by missing ACLs. It changes
// nothing.
func Diff(ctx context.Context, adm *kadm.Client, s Spec) ([]Change, error) {
	steps, err := plan(ctx, adm, s)
	if err != nil {
		return nil, err
	}
	return changesOf(steps), nil
}

// Apply makes the cluster match s: it creates missing topics and ACLs, sets
// drifted configs and raises partition counts, then returns the changes it
// made (all of them, with DryRun). It is idempotent: applying the same spec
// again returns only KindOK changes. Conflicts are never applied; when there
// are any, Apply still applies everything else and returns an error wrapping
// ErrConflict.
func Apply(ctx context.Context, adm *kadm.Client, s Spec, opts ...ApplyOpt) ([]Change, error) {
	var cfg applyCfg
	for _, o := range opts {
		o(&cfg)
	}
	steps, err := plan(ctx, adm, s)
	if err != nil {
		return nil, err
	}
	changes := changesOf(steps)
	if cfg.dryRun {
		return changes, nil
	}
	var errs []error
	for _, st := range steps {
		if st.do == nil {
			continue
		}
		if err := st.do(ctx, adm); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", st.Kind, st.Topic, err))
		}
	}
	if len(errs) == 0 {
		if err := waitCreated(ctx, adm, steps); err != nil {
			errs = append(errs, err)
		}
	}
	if n := Count(changes, KindConflict); n > 0 {
		errs = append(errs, fmt.Errorf("%w: %d difference(s) need a manual fix (see the lines marked !)", ErrConflict, n))
	}
	return changes, errors.Join(errs...)
}

// waitCreated returns once every topic Apply created answers ListOffsets on
// all its partitions. Apache Kafka acknowledges CreateTopics when the
// controller has recorded the topic, before the brokers serve it: a worker
// or reader started right after Apply would otherwise get
// UNKNOWN_TOPIC_OR_PARTITION (kfake serves new topics at once).
func waitCreated(ctx context.Context, adm *kadm.Client, steps []step) error {
	var topics []string
	for _, st := range steps {
		if st.Kind == KindCreate && st.do != nil {
			topics = append(topics, st.Topic)
		}
	}
	if len(topics) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		offs, err := adm.ListEndOffsets(ctx, topics...)
		if err == nil {
			err = offs.Error()
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("created topics not served by the brokers after 30 s (%v): check the brokers' logs, then run apply again", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Count returns how many changes are of kind.
func Count(changes []Change, kind string) int {
	n := 0
	for _, c := range changes {
		if c.Kind == kind {
			n++
		}
	}
	return n
}

// Pending reports whether any change would modify the cluster.
func Pending(changes []Change) bool {
	for _, c := range changes {
		if c.Kind != KindOK && c.Kind != KindConflict {
			return true
		}
	}
	return false
}

func changesOf(steps []step) []Change {
	out := make([]Change, len(steps))
	for i, st := range steps {
		out[i] = st.Change
	}
	return out
}

func plan(ctx context.Context, adm *kadm.Client, s Spec) ([]step, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("invalid topology spec: %w", err)
	}
	names := make([]string, len(s.Topics))
	for i, t := range s.Topics {
		names[i] = t.Name
	}
	var (
		details kadm.TopicDetails
		err     error
	)
	if len(names) > 0 {
		// WithAuthorizedOps bypasses kadm's metadata cache, so a diff
		// right after an apply sees the topics it created.
		details, err = adm.ListTopics(kadm.WithAuthorizedOps(ctx), names...)
		if err != nil {
			return nil, fmt.Errorf("list topics (is Kafka reachable at --brokers?): %w", err)
		}
	}
	var existing []string
	for _, t := range s.Topics {
		d, ok := details[t.Name]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			continue
		}
		if d.Err != nil {
			return nil, fmt.Errorf("describe topic %q: %w", t.Name, d.Err)
		}
		existing = append(existing, t.Name)
	}
	configs := make(map[string]map[string]*string)
	if len(existing) > 0 {
		rcs, err := adm.DescribeTopicConfigs(ctx, existing...)
		if err != nil {
			return nil, fmt.Errorf("describe topic configs: %w", err)
		}
		for _, rc := range rcs {
			if rc.Err != nil {
				return nil, fmt.Errorf("describe configs of topic %q: %w", rc.Name, rc.Err)
			}
			m := make(map[string]*string, len(rc.Configs))
			for _, c := range rc.Configs {
				m[c.Key] = c.Value
			}
			configs[rc.Name] = m
		}
	}

	var steps []step
	for _, t := range s.Topics {
		d, ok := details[t.Name]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			steps = append(steps, createStep(t))
			continue
		}
		steps = append(steps, topicSteps(t, d, configs[t.Name])...)
	}
	aclSteps, err := planACLs(ctx, adm, s.ACLs)
	if err != nil {
		return nil, err
	}
	return append(steps, aclSteps...), nil
}

func createStep(t Topic) step {
	cfgs := make(map[string]*string, len(t.Configs))
	for k, v := range t.Configs {
		cfgs[k] = kadm.StringPtr(v)
	}
	return step{
		Change: Change{
			Topic:  t.Name,
			Kind:   KindCreate,
			Detail: fmt.Sprintf("partitions=%d replication=%d %s", t.Partitions, t.ReplicationFactor, formatConfigs(t.Configs)),
		},
		do: func(ctx context.Context, adm *kadm.Client) error {
			resp, err := adm.CreateTopic(ctx, t.Partitions, t.ReplicationFactor, cfgs, t.Name)
			if errors.Is(err, kerr.TopicAlreadyExists) {
				return nil // created concurrently (another setup run); a later diff shows any drift
			}
			if err != nil && resp.ErrMessage != "" {
				return fmt.Errorf("%w: %s", err, resp.ErrMessage)
			}
			return err
		},
	}
}

func topicSteps(t Topic, d kadm.TopicDetail, have map[string]*string) []step {
	var steps []step
	havePartitions := int32(len(d.Partitions))
	switch {
	case havePartitions < t.Partitions:
		steps = append(steps, step{
			Change: Change{Topic: t.Name, Kind: KindAddPartitions, Detail: addPartitionsDetail(t, havePartitions)},
			do: func(ctx context.Context, adm *kadm.Client) error {
				rs, err := adm.UpdatePartitions(ctx, int(t.Partitions), t.Name)
				if err != nil {
					return err
				}
				return rs.Error()
			},
		})
	case havePartitions > t.Partitions:
		steps = append(steps, step{Change: Change{Topic: t.Name, Kind: KindConflict, Detail: fmt.Sprintf(
			"has %d partitions, spec wants %d: Kafka cannot remove partitions; raise the spec to %d or recreate the topic by hand",
			havePartitions, t.Partitions, havePartitions)}})
	}
	if rf := int16(d.Partitions.NumReplicas()); rf != t.ReplicationFactor {
		steps = append(steps, step{Change: Change{Topic: t.Name, Kind: KindConflict, Detail: fmt.Sprintf(
			"replication factor is %d, spec wants %d: reassign replicas with kafka-reassign-partitions, or set --replication-factor %d",
			rf, t.ReplicationFactor, rf)}})
	}

	var (
		alters []kadm.AlterConfig
		diffs  []string
	)
	for _, k := range sortedKeys(t.Configs) {
		want := t.Configs[k]
		got, ok := have[k]
		if ok && got != nil && sameConfig(k, *got, want) {
			continue
		}
		from := "(unset)"
		if ok && got != nil {
			from = displayConfig(k, *got)
		}
		diffs = append(diffs, fmt.Sprintf("%s: %s -> %s", k, from, displayConfig(k, want)))
		alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kadm.StringPtr(want)})
	}
	if len(alters) > 0 {
		steps = append(steps, step{
			Change: Change{Topic: t.Name, Kind: KindAlterConfig, Detail: strings.Join(diffs, ", ")},
			do: func(ctx context.Context, adm *kadm.Client) error {
				rs, err := adm.AlterTopicConfigs(ctx, alters, t.Name)
				if err != nil {
					return err
				}
				for _, r := range rs {
					if r.Err != nil {
						if r.ErrMessage != "" {
							return fmt.Errorf("%w: %s", r.Err, r.ErrMessage)
						}
						return r.Err
					}
				}
				return nil
			},
		})
	}
	if len(steps) == 0 {
		steps = append(steps, step{Change: Change{Topic: t.Name, Kind: KindOK, Detail: fmt.Sprintf(
			"partitions=%d replication=%d %s", havePartitions, t.ReplicationFactor, formatConfigs(t.Configs))}})
	}
	return steps
}

// addPartitionsDetail warns, for compacted topics, that existing keys hash to
// other partitions afterwards: the latest value of a key may then live in two
// partitions until it is written again.
func addPartitionsDetail(t Topic, have int32) string {
	d := fmt.Sprintf("partitions %d -> %d", have, t.Partitions)
	if strings.Contains(t.Configs[ConfigCleanupPolicy], "compact") {
		d += " (compacted topic: existing keys move to other partitions; stop its writers and readers while resizing)"
	}
	return d
}

// sameConfig compares config values the way Kafka means them: list configs
// ignore order and spacing ("compact, delete" == "delete,compact").
func sameConfig(key, got, want string) bool {
	if key == ConfigCleanupPolicy {
		return normList(got) == normList(want)
	}
	return got == want
}

func normList(v string) string {
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func displayConfig(k, v string) string {
	if k == ConfigRetentionMS {
		if h := FormatRetention(v); h != v {
			return v + " (" + h + ")"
		}
	}
	return v
}

func formatConfigs(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+"="+displayConfig(k, m[k]))
	}
	return strings.Join(parts, " ")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// String renders an ACL for diffs and errors.
func (a ACL) String() string {
	res := a.Resource
	if a.Resource != "cluster" {
		res += " " + a.Name
		if a.Pattern == "prefixed" {
			res += "*"
		}
	}
	return fmt.Sprintf("%s %s %s on %s from %s", a.Permission, a.Principal, strings.Join(a.Operations, ","), res, a.Host)
}

// builder turns a into a kadm ACL builder matching exactly this entry.
func (a ACL) builder() (*kadm.ACLBuilder, error) {
	if !strings.Contains(a.Principal, ":") {
		return nil, fmt.Errorf("principal %q: want TYPE:NAME, e.g. User:tokenizer", a.Principal)
	}
	if len(a.Operations) == 0 {
		return nil, errors.New("no operations")
	}
	b := kadm.NewACLs()
	switch a.Resource {
	case "topic":
		b.Topics(a.Name)
	case "group":
		b.Groups(a.Name)
	case "transactional-id", "transactional_id":
		b.TransactionalIDs(a.Name)
	case "cluster":
		b.Clusters()
	default:
		return nil, fmt.Errorf("resource %q: want topic, group, transactional-id or cluster", a.Resource)
	}
	if a.Resource != "cluster" && a.Name == "" {
		return nil, errors.New("resource name is empty")
	}
	switch a.Permission {
	case "allow":
		b.Allow(a.Principal).AllowHosts(a.Host)
	case "deny":
		b.Deny(a.Principal).DenyHosts(a.Host)
	default:
		return nil, fmt.Errorf("permission %q: want allow or deny", a.Permission)
	}
	ops := make([]kadm.ACLOperation, 0, len(a.Operations))
	for _, o := range a.Operations {
		op, err := kmsg.ParseACLOperation(strings.ReplaceAll(strings.ToLower(o), "-", "_"))
		if err != nil || op == kmsg.ACLOperationAny || op == kmsg.ACLOperationUnknown {
			return nil, fmt.Errorf("operation %q: want read, write, describe, create, alter, delete, describe_configs, alter_configs, idempotent_write or all", o)
		}
		ops = append(ops, op)
	}
	b.Operations(ops...)
	switch a.Pattern {
	case "literal":
		b.ResourcePatternType(kadm.ACLPatternLiteral)
	case "prefixed":
		b.ResourcePatternType(kadm.ACLPatternPrefixed)
	default:
		return nil, fmt.Errorf("pattern %q: want literal or prefixed", a.Pattern)
	}
	if err := b.ValidateCreate(); err != nil {
		return nil, err
	}
	return b, nil
}

func planACLs(ctx context.Context, adm *kadm.Client, acls []ACL) ([]step, error) {
	var steps []step
	for _, a := range acls {
		b, err := a.builder()
		if err != nil {
			return nil, fmt.Errorf("acl %s: %w", a, err)
		}
		rs, err := adm.DescribeACLs(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("describe acl %s (does the cluster run an authorizer?): %w", a, err)
		}
		var missing []string
		for _, r := range rs {
			if r.Err != nil {
				return nil, fmt.Errorf("describe acl %s: %w", a, r.Err)
			}
			if len(r.Described) == 0 {
				missing = append(missing, strings.ToLower(r.Operation.String()))
			}
		}
		if len(missing) == 0 {
			steps = append(steps, step{Change: Change{Topic: a.Name, Kind: KindOK, Detail: "acl " + a.String()}})
			continue
		}
		slices.Sort(missing)
		want := a
		want.Operations = missing
		wb, err := want.builder()
		if err != nil {
			return nil, fmt.Errorf("acl %s: %w", want, err)
		}
		steps = append(steps, step{
			Change: Change{Topic: a.Name, Kind: KindCreateACL, Detail: "acl " + want.String()},
			do: func(ctx context.Context, adm *kadm.Client) error {
				rs, err := adm.CreateACLs(ctx, wb)
				if err != nil {
					return err
				}
				for _, r := range rs {
					if r.Err != nil {
						return r.Err
					}
				}
				return nil
			},
		})
	}
	return steps, nil
}

var symbols = map[string]string{
	KindCreate:        "+",
	KindCreateACL:     "+",
	KindAlterConfig:   "~",
	KindAddPartitions: "~",
	KindOK:            "=",
	KindConflict:      "!",
}

// Print writes changes as a plan a human can review before applying, in the
// style of terraform: "+" create, "~" alter, "=" unchanged, "!" conflict,
// followed by a one-line summary.
func Print(w io.Writer, changes []Change) {
	for _, c := range changes {
		sym := symbols[c.Kind]
		if sym == "" {
			sym = "?"
		}
		fmt.Fprintf(w, "%s %-14s %-34s %s\n", sym, c.Kind, c.Topic, c.Detail)
	}
	fmt.Fprintf(w, "Plan: %d to create, %d to change, %d unchanged, %d conflict(s).\n",
		Count(changes, KindCreate)+Count(changes, KindCreateACL),
		Count(changes, KindAlterConfig)+Count(changes, KindAddPartitions),
		Count(changes, KindOK),
		Count(changes, KindConflict))
}
