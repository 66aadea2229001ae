package chain

import (
	"context"
	"errors"
	"time"
)

// ErrExists is returned by [Store.PutIfAbsent] when an object already exists
// at the key (S3: 412 Precondition Failed on If-None-Match: *).
var ErrExists = errors.New("object already exists")

// ErrNotFound is returned by [Store.Get] when the key or version is absent.
var ErrNotFound = errors.New("object not found")

// ErrRetentionUnknown is returned by [Store.Retention] for stores that cannot
// report Object Lock retention (an offline copy on disk).
var ErrRetentionUnknown = errors.New("retention cannot be read from this store")

// ErrNotImmutable is returned by stores that check their bucket when it
// cannot hold an immutable trail (no Object Lock, no versioning). Writers
// must refuse to start on it rather than retry.
var ErrNotImmutable = errors.New("store cannot make objects immutable")

// ObjectVersion is one entry of a version listing.
type ObjectVersion struct {
	Key          string
	VersionID    string
	IsLatest     bool
	DeleteMarker bool
	LastModified time.Time
}

// Retention is the Object Lock retention of one object version.
type Retention struct {
	Mode        string // "COMPLIANCE" or "GOVERNANCE"; "" when none
	RetainUntil time.Time
	LegalHold   bool
}

// Store is the object store the chain lives in. Implementations must be safe
// for concurrent use.
type Store interface {
	// PutIfAbsent writes body at key only if no object exists there (S3
	// If-None-Match: *), with the store's retention, and returns the version
	// id it created. It returns an error wrapping ErrExists when the key is
	// taken.
	PutIfAbsent(ctx context.Context, key string, body []byte) (versionID string, err error)
	// Get returns the content of key at versionID ("" for the latest) and the
	// version id actually read. It returns an error wrapping ErrNotFound when
	// absent.
	Get(ctx context.Context, key, versionID string) (body []byte, gotVersion string, err error)
	// List calls fn for each current key under prefix in lexical order,
	// starting after startAfter ("" for the beginning).
	List(ctx context.Context, prefix, startAfter string, fn func(key string) error) error
	// Versions calls fn for every version and delete marker under prefix.
	Versions(ctx context.Context, prefix string, fn func(ObjectVersion) error) error
	// Retention reports the Object Lock retention of one version.
	Retention(ctx context.Context, key, versionID string) (Retention, error)
}
