package chain

import (
	"context"
	"strings"
)

// PartialTrail says the trail archives a range of the topic on purpose (a
// replay's re-archive under its own prefix): with CheckOffsets, committed
// records before a partition's first chained offset are not missing. Gaps
// inside the chained span are still defects.
func PartialTrail() VerifyOpt { return func(c *verifyCfg) { c.partial = true } }

// Prefixed returns s with every key under prefix (e.g. "replays/job-1/"): a
// chain written through it lives beside the live trail, never in it, and
// Verify over the same prefix checks it on its own (its own heads,
// manifests, checkpoints and published keys).
func Prefixed(s Store, prefix string) Store {
	return prefixed{s: s, p: prefix}
}

type prefixed struct {
	s Store
	p string
}

func (x prefixed) PutIfAbsent(ctx context.Context, key string, body []byte) (string, error) {
	return x.s.PutIfAbsent(ctx, x.p+key, body)
}

func (x prefixed) Get(ctx context.Context, key, versionID string) ([]byte, string, error) {
	return x.s.Get(ctx, x.p+key, versionID)
}

func (x prefixed) List(ctx context.Context, prefix, startAfter string, fn func(string) error) error {
	if startAfter != "" {
		startAfter = x.p + startAfter
	}
	return x.s.List(ctx, x.p+prefix, startAfter, func(k string) error {
		return fn(strings.TrimPrefix(k, x.p))
	})
}

func (x prefixed) Versions(ctx context.Context, prefix string, fn func(ObjectVersion) error) error {
	return x.s.Versions(ctx, x.p+prefix, func(v ObjectVersion) error {
		v.Key = strings.TrimPrefix(v.Key, x.p)
		return fn(v)
	})
}

func (x prefixed) Retention(ctx context.Context, key, versionID string) (Retention, error) {
	return x.s.Retention(ctx, x.p+key, versionID)
}

// CheckBucket passes the bucket check through (Object Lock is the bucket's).
func (x prefixed) CheckBucket(ctx context.Context) error {
	if bc, ok := x.s.(interface{ CheckBucket(context.Context) error }); ok {
		return bc.CheckBucket(ctx)
	}
	return nil
}
