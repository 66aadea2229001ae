package scan

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Source is the kind of store a Target points at.
type Source string

// The sources a scan can read.
const (
	SourceKafka    Source = "kafka"
	SourceS3       Source = "s3"
	SourcePostgres Source = "postgres"
	SourceFile     Source = "file"
)

// Bound is one end of a Kafka range: an offset or a time. The zero Bound is
// unset (from the start, or up to the end captured when the scan starts).
type Bound struct {
	Offset int64     // used when Time is zero and Set is true
	Time   time.Time // used when non-zero
	Set    bool
}

func (b Bound) String() string {
	switch {
	case !b.Set:
		return ""
	case !b.Time.IsZero():
		return b.Time.UTC().Format(time.RFC3339)
	default:
		return strconv.FormatInt(b.Offset, 10)
	}
}

// Target is one place to scan, parsed from a URL or a path by ParseTarget.
type Target struct {
	Source Source

	// raw is the target as the user gave it; it may hold a password and is
	// never printed: String returns a redacted form.
	raw string

	// Kafka: brokers from the URL host (empty means the configured brokers),
	// the topic, and an optional range; From and To apply to every partition,
	// To is exclusive.
	Brokers  []string
	Topic    string
	From, To Bound

	// S3: the bucket and key prefix. Endpoint and credentials come from the
	// scanner's S3 configuration.
	Bucket, Prefix string

	// Postgres: the connection string (may hold a password; never printed).
	DSN string

	// File: a file or directory, scanned recursively.
	Path string
}

// String returns the target with any password redacted, safe to print.
func (t Target) String() string {
	switch t.Source {
	case SourcePostgres:
		if u, err := url.Parse(t.raw); err == nil {
			return u.Redacted()
		}
		return "postgres://(unparseable)"
	case SourceFile:
		return t.Path
	}
	return t.raw
}

// ParseTargets parses every argument with ParseTarget.
func ParseTargets(args []string) ([]Target, error) {
	ts := make([]Target, 0, len(args))
	for _, a := range args {
		t, err := ParseTarget(a)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// ParseTarget parses one target:
//
//	kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?from=OFFSET|RFC3339][&to=OFFSET|RFC3339]
//	kafka:///TOPIC                      (brokers from configuration)
//	s3://BUCKET[/PREFIX]
//	postgres://... or postgresql://...  (a libpq URL, handed to pgx)
//	file:///PATH, or a plain path to a file or directory
//
// Errors say what is wrong with the target and never echo a password.
func ParseTarget(s string) (Target, error) {
	scheme, rest, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		if s == "" {
			return Target{}, fmt.Errorf("empty target: give kafka://HOST:PORT/TOPIC, s3://BUCKET/PREFIX, postgres://... or a path")
		}
		return Target{Source: SourceFile, raw: s, Path: s}, nil
	}
	switch strings.ToLower(scheme) {
	case "kafka":
		return parseKafka(s, rest)
	case "s3":
		bucket, prefix, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return Target{}, fmt.Errorf("target %q: missing bucket, want s3://BUCKET/PREFIX", s)
		}
		return Target{Source: SourceS3, raw: s, Bucket: bucket, Prefix: prefix}, nil
	case "postgres", "postgresql":
		if _, err := url.Parse(s); err != nil {
			return Target{}, fmt.Errorf("postgres target is not a valid URL (check quoting of special characters in the password)")
		}
		return Target{Source: SourcePostgres, raw: s, DSN: s}, nil
	case "file":
		if rest == "" {
			return Target{}, fmt.Errorf("target %q: missing path, want file:///PATH", s)
		}
		return Target{Source: SourceFile, raw: s, Path: rest}, nil
	default:
		return Target{}, fmt.Errorf("target %q: unknown scheme %q, want kafka://, s3://, postgres:// or a path", s, scheme)
	}
}

func parseKafka(s, rest string) (Target, error) {
	if host, _, _ := strings.Cut(rest, "/"); strings.Contains(host, "@") {
		// Never keep credentials in a target string (it is printed in
		// reports), nor echo them here.
		return Target{}, fmt.Errorf("kafka target: credentials do not go in the URL, use --kafka-sasl-username and --kafka-sasl-password")
	}
	hostPart, pathQuery, ok := strings.Cut(rest, "/")
	if !ok {
		return Target{}, fmt.Errorf("target %q: missing topic, want kafka://HOST:PORT/TOPIC", s)
	}
	topic, query, _ := strings.Cut(pathQuery, "?")
	if topic == "" || strings.Contains(topic, "/") {
		return Target{}, fmt.Errorf("target %q: want exactly one topic, kafka://HOST:PORT/TOPIC", s)
	}
	t := Target{Source: SourceKafka, raw: s, Topic: topic}
	if hostPart != "" {
		for _, h := range strings.Split(hostPart, ",") {
			if h == "" {
				continue
			}
			if !strings.Contains(h, ":") {
				h += ":9092"
			}
			t.Brokers = append(t.Brokers, h)
		}
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return Target{}, fmt.Errorf("target %q: bad query: %v", s, err)
	}
	for k := range q {
		if k != "from" && k != "to" {
			return Target{}, fmt.Errorf("target %q: unknown parameter %q, want from= and to= (offset or RFC 3339 time)", s, k)
		}
	}
	if t.From, err = parseBound(q.Get("from")); err != nil {
		return Target{}, fmt.Errorf("target %q: from: %v", s, err)
	}
	if t.To, err = parseBound(q.Get("to")); err != nil {
		return Target{}, fmt.Errorf("target %q: to: %v", s, err)
	}
	return t, nil
}

func parseBound(v string) (Bound, error) {
	if v == "" {
		return Bound{}, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return Bound{}, fmt.Errorf("offset %d is negative", n)
		}
		return Bound{Offset: n, Set: true}, nil
	}
	tm, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return Bound{}, fmt.Errorf("%q is neither an offset nor an RFC 3339 time (e.g. 2026-01-02T15:04:05Z)", v)
	}
	return Bound{Time: tm, Set: true}, nil
}
