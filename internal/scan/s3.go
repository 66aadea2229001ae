package scan

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/s3x"
)

// scanS3 scans every object under the prefix, line by line, decompressing
// gzip objects, reporting bucket/key:line.
func (r *run) scanS3(ctx context.Context, t Target) error {
	cl := r.s.cfg.s3Client
	if cl == nil {
		c, err := s3x.NewClient(ctx, r.s.cfg.s3)
		if err != nil {
			return fmt.Errorf("S3 client: %w (check --s3-endpoint and credentials)", err)
		}
		cl = c
	}
	p := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{
		Bucket: aws.String(t.Bucket),
		Prefix: aws.String(t.Prefix),
	})
	// Objects are read by a bounded pool of workers, each with its own
	// line scanner. An object that cannot be read (access denied, corrupt
	// gzip) does not stop the others, but fails the target at the end.
	var (
		mu     sync.Mutex
		failed int
		firstE error
	)
	var g errgroup.Group
	g.SetLimit(r.s.cfg.workers)
	scanners := sync.Pool{New: func() any { return newLineScanner(r.s.det) }}
	first := true
	for p.HasMorePages() && ctx.Err() == nil {
		lctx, cancel := ctx, context.CancelFunc(func() {})
		if first {
			// Bound the first call: it is where an unreachable endpoint shows.
			lctx, cancel = context.WithTimeout(ctx, r.s.cfg.dialTimeout)
		}
		page, err := p.NextPage(lctx)
		cancel()
		if err != nil {
			g.Wait()
			return r.s3Err(err, t)
		}
		first = false
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			if strings.HasSuffix(key, "/") && aws.ToInt64(obj.Size) == 0 {
				continue // a "folder" marker
			}
			g.Go(func() error {
				ls := scanners.Get().(*lineScanner)
				defer scanners.Put(ls)
				if err := r.scanObject(ctx, cl, ls, t, key); err != nil && ctx.Err() == nil {
					mu.Lock()
					if failed++; firstE == nil {
						firstE = err
					}
					mu.Unlock()
				}
				return nil
			})
		}
	}
	g.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d object(s) could not be read, the first: %w", failed, firstE)
	}
	return nil
}

func (r *run) scanObject(ctx context.Context, cl *s3.Client, ls *lineScanner, t Target, key string) error {
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(t.Bucket), Key: aws.String(key)})
	shown := r.s.mask(key)
	if err != nil {
		return fmt.Errorf("get s3://%s/%s: %w", t.Bucket, shown, r.s3Err(err, t))
	}
	defer out.Body.Close()
	r.items.Add(1)
	err = ls.scan(out.Body, func(n int64) { r.bytes.Add(n) }, func(line int64, occ int, m pan.Match) {
		loc := fmt.Sprintf("s3://%s/%s:%d", t.Bucket, shown, line)
		r.emit(Finding{
			Kind:     KindPAN,
			Source:   SourceS3,
			Target:   t.String(),
			Location: loc,
			S3:       &S3Location{Bucket: t.Bucket, Key: shown, Line: line},
			Network:  m.Network.String(),
			Last4:    string(m.Last4[:]),
			Encoding: m.Encoding.String(),
			Digits:   m.Digits,
			Message:  panMessage(m, loc),
		}, loc, occ)
	})
	if err != nil {
		return fmt.Errorf("reading s3://%s/%s: %w", t.Bucket, shown, err)
	}
	return nil
}

// s3Err turns an SDK error into one line that says what to fix.
func (r *run) s3Err(err error, t Target) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchBucket":
			return fmt.Errorf("bucket %q does not exist at %s (check the bucket name and --s3-endpoint)", t.Bucket, r.s.cfg.s3.Endpoint)
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
			return fmt.Errorf("S3 at %s refused access to bucket %q: %s (check the S3 access key and secret)", r.s.cfg.s3.Endpoint, t.Bucket, ae.ErrorCode())
		}
		return fmt.Errorf("S3 at %s: %s: %s", r.s.cfg.s3.Endpoint, ae.ErrorCode(), ae.ErrorMessage())
	}
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "connect:") || strings.Contains(err.Error(), "dial tcp") {
		return fmt.Errorf("cannot reach S3 at %q (check --s3-endpoint and that the service is running): %w", r.s.cfg.s3.Endpoint, err)
	}
	return err
}
