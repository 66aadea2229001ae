// Package auditstore keeps pcistream's audit chain (internal/chain) in an S3
// bucket with Object Lock: every object is written once, with COMPLIANCE
// retention, a SHA-256 checksum the server verifies, and If-None-Match: * so
// an existing key is never silently shadowed by a new version.
package auditstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/pcistream/pcistream/internal/chain"
)

// DefaultRetention is how long written objects stay locked: PCI DSS 10.5.1
// asks for at least twelve months of audit history.
const DefaultRetention = 365 * 24 * time.Hour

// Store is a chain.Store over one S3 bucket.
type Store struct {
	cl        *s3.Client
	bucket    string
	retention time.Duration
	now       func() time.Time
	onWrite   func(d time.Duration, err error)
}

// Opt configures a Store.
type Opt func(*Store)

// Retention sets the COMPLIANCE retention period of new objects.
func Retention(d time.Duration) Opt { return func(s *Store) { s.retention = d } }

// OnWrite is called after each PUT with its latency and outcome (metrics).
func OnWrite(fn func(d time.Duration, err error)) Opt { return func(s *Store) { s.onWrite = fn } }

// Clock overrides time.Now (retain-until dates).
func Clock(now func() time.Time) Opt { return func(s *Store) { s.now = now } }

// New returns a Store writing to bucket through cl.
func New(cl *s3.Client, bucket string, opts ...Opt) *Store {
	s := &Store{cl: cl, bucket: bucket, retention: DefaultRetention, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

var _ chain.Store = (*Store)(nil)

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// Client returns the underlying S3 client.
func (s *Store) Client() *s3.Client { return s.cl }

// CheckBucket refuses a bucket that cannot hold an immutable audit trail: it
// must exist, have versioning enabled and Object Lock enabled.
func (s *Store) CheckBucket(ctx context.Context) error {
	lc, err := s.cl.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(s.bucket)})
	if err != nil {
		if errorCode(err) == "NoSuchBucket" {
			return fmt.Errorf("bucket %s does not exist: create it with Object Lock enabled (aws s3api create-bucket --object-lock-enabled-for-bucket): %w", s.bucket, chain.ErrNotImmutable)
		}
		if code := errorCode(err); code == "ObjectLockConfigurationNotFoundError" || code == "NoSuchObjectLockConfiguration" {
			return fmt.Errorf("bucket %s has no Object Lock: audit logs must be immutable (PCI DSS 10.5); create a bucket with Object Lock enabled (aws s3api create-bucket --object-lock-enabled-for-bucket) and point --s3-bucket at it: %w", s.bucket, chain.ErrNotImmutable)
		}
		return fmt.Errorf("reading Object Lock configuration of bucket %s: %w", s.bucket, err)
	}
	if lc.ObjectLockConfiguration == nil || lc.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return fmt.Errorf("bucket %s has no Object Lock: audit logs must be immutable (PCI DSS 10.5); create a bucket with Object Lock enabled and point --s3-bucket at it: %w", s.bucket, chain.ErrNotImmutable)
	}
	v, err := s.cl.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(s.bucket)})
	if err != nil {
		return fmt.Errorf("reading versioning of bucket %s: %w", s.bucket, err)
	}
	if v.Status != types.BucketVersioningStatusEnabled {
		return fmt.Errorf("bucket %s does not have versioning enabled (status %q); Object Lock needs it: %w", s.bucket, v.Status, chain.ErrNotImmutable)
	}
	return nil
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// PutIfAbsent writes body with If-None-Match: *, COMPLIANCE retention and a
// SHA-256 checksum, and returns the new version id.
func (s *Store) PutIfAbsent(ctx context.Context, key string, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	start := time.Now()
	out, err := s.cl.PutObject(ctx, &s3.PutObjectInput{
		Bucket:                    aws.String(s.bucket),
		Key:                       aws.String(key),
		Body:                      bytes.NewReader(body),
		ContentLength:             aws.Int64(int64(len(body))),
		ContentType:               aws.String(contentType(key)),
		IfNoneMatch:               aws.String("*"),
		ChecksumAlgorithm:         types.ChecksumAlgorithmSha256,
		ChecksumSHA256:            aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		ObjectLockMode:            types.ObjectLockModeCompliance,
		ObjectLockRetainUntilDate: aws.Time(s.now().Add(s.retention).UTC().Truncate(time.Second)),
	})
	if s.onWrite != nil {
		s.onWrite(time.Since(start), err)
	}
	if err != nil {
		if st := httpStatus(err); st == http.StatusPreconditionFailed || errorCode(err) == "PreconditionFailed" {
			return "", fmt.Errorf("s3://%s/%s: %w", s.bucket, key, chain.ErrExists)
		}
		// 409 ConditionalRequestConflict: a concurrent conditional write
		// to the same key is in flight; the caller retries and then sees
		// 412 or success.
		return "", fmt.Errorf("put s3://%s/%s: %w", s.bucket, key, err)
	}
	if out.VersionId == nil || *out.VersionId == "" {
		return "", fmt.Errorf("put s3://%s/%s: no version id returned: is versioning enabled on the bucket?", s.bucket, key)
	}
	return *out.VersionId, nil
}

func contentType(key string) string {
	switch {
	case len(key) > 9 && key[len(key)-9:] == ".jsonl.gz":
		return "application/gzip"
	case len(key) > 5 && key[len(key)-5:] == ".json":
		return "application/json"
	}
	return "application/octet-stream"
}

func isNotFound(err error) bool {
	switch errorCode(err) {
	case "NoSuchKey", "NoSuchVersion", "NotFound":
		return true
	}
	st := httpStatus(err)
	return st == http.StatusNotFound
}

// Get reads key at versionID ("" for the latest).
func (s *Store) Get(ctx context.Context, key, versionID string) ([]byte, string, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	out, err := s.cl.GetObject(ctx, in)
	if err != nil {
		if isNotFound(err) {
			return nil, "", fmt.Errorf("s3://%s/%s: %w", s.bucket, key, chain.ErrNotFound)
		}
		// A delete marker as the latest version answers 405 with
		// x-amz-delete-marker on a versioned GET; treat as absent.
		if httpStatus(err) == http.StatusMethodNotAllowed {
			return nil, "", fmt.Errorf("s3://%s/%s (delete marker): %w", s.bucket, key, chain.ErrNotFound)
		}
		return nil, "", fmt.Errorf("get s3://%s/%s: %w", s.bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, "", fmt.Errorf("get s3://%s/%s: %w", s.bucket, key, err)
	}
	return b, aws.ToString(out.VersionId), nil
}

// List calls fn for each key under prefix after startAfter, in order.
func (s *Store) List(ctx context.Context, prefix, startAfter string, fn func(string) error) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)}
	if startAfter != "" {
		in.StartAfter = aws.String(startAfter)
	}
	p := s3.NewListObjectsV2Paginator(s.cl, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list s3://%s/%s: %w", s.bucket, prefix, err)
		}
		for _, o := range page.Contents {
			if err := fn(aws.ToString(o.Key)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Versions calls fn for every version and delete marker under prefix.
func (s *Store) Versions(ctx context.Context, prefix string, fn func(chain.ObjectVersion) error) error {
	p := s3.NewListObjectVersionsPaginator(s.cl, &s3.ListObjectVersionsInput{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list versions s3://%s/%s: %w", s.bucket, prefix, err)
		}
		for _, v := range page.Versions {
			if err := fn(chain.ObjectVersion{Key: aws.ToString(v.Key), VersionID: aws.ToString(v.VersionId), IsLatest: aws.ToBool(v.IsLatest), LastModified: aws.ToTime(v.LastModified)}); err != nil {
				return err
			}
		}
		for _, d := range page.DeleteMarkers {
			if err := fn(chain.ObjectVersion{Key: aws.ToString(d.Key), VersionID: aws.ToString(d.VersionId), IsLatest: aws.ToBool(d.IsLatest), DeleteMarker: true, LastModified: aws.ToTime(d.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Retention reads the Object Lock retention (and legal hold) of a version.
func (s *Store) Retention(ctx context.Context, key, versionID string) (chain.Retention, error) {
	in := &s3.GetObjectRetentionInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	out, err := s.cl.GetObjectRetention(ctx, in)
	if err != nil {
		switch errorCode(err) {
		case "NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError", "InvalidRequest":
			return chain.Retention{}, nil
		}
		if isNotFound(err) {
			return chain.Retention{}, fmt.Errorf("s3://%s/%s: %w", s.bucket, key, chain.ErrNotFound)
		}
		return chain.Retention{}, fmt.Errorf("retention of s3://%s/%s: %w", s.bucket, key, err)
	}
	var r chain.Retention
	if out.Retention != nil {
		r.Mode = string(out.Retention.Mode)
		r.RetainUntil = aws.ToTime(out.Retention.RetainUntilDate)
	}
	return r, nil
}
