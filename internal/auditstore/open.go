package auditstore

import (
	"context"
	"fmt"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/s3x"
)

// Open builds an S3 client from c (any S3-compatible endpoint: AWS, MinIO,
// versitygw) and returns a Store on c.Bucket. It does not contact S3; call
// CheckBucket (the auditor does) to refuse a bucket without Object Lock.
func Open(ctx context.Context, c config.S3, opts ...Opt) (*Store, error) {
	if c.Bucket == "" {
		return nil, fmt.Errorf("no audit bucket configured: set --s3-bucket or PCISTREAM_S3_BUCKET")
	}
	cl, err := s3x.NewClient(ctx, c)
	if err != nil {
		return nil, err
	}
	return New(cl, c.Bucket, opts...), nil
}
