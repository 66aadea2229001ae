// Package s3x builds aws-sdk-go-v2 S3 clients from pcistream's configuration,
// so every command reaches AWS, MinIO or versitygw the same way.
package s3x

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pcistream/pcistream/internal/config"
)

// Deadlines of every S3 request. With MaxAttempts, a call to a hung
// endpoint fails within about MaxAttempts × RequestTimeout plus backoff
// (under 25 s), so the auditor reports it well within 30 s.
const (
	DialTimeout    = 5 * time.Second
	RequestTimeout = 10 * time.Second
	MaxAttempts    = 2
)

// NewClient returns an S3 client for c. With no access key it falls back to
// the AWS default credential chain (environment, shared config, IMDS, IRSA).
func NewClient(ctx context.Context, c config.S3) (*s3.Client, error) {
	var loadOpts []func(*awsconfig.LoadOptions) error
	if c.Region != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(c.Region))
	}
	if c.AccessKey != "" {
		loadOpts = append(loadOpts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, "")))
	}
	// Every S3 call has a deadline: a hung endpoint (a stopped MinIO, a
	// black-holed network) becomes an error within RequestTimeout per
	// attempt, which callers count, log and report as not ready, instead
	// of a write that never returns.
	var pool *x509.CertPool
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("s3 CA file: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("s3 CA file %s: no PEM certificates found", c.CAFile)
		}
	}
	// A BuildableClient (not a plain http.Client) so the SDK can still add
	// an AWS_CA_BUNDLE from the environment.
	hc := awshttp.NewBuildableClient().WithTimeout(RequestTimeout).
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = DialTimeout }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSHandshakeTimeout = DialTimeout
			tr.ResponseHeaderTimeout = RequestTimeout
			if pool != nil {
				tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			}
		})
	loadOpts = append(loadOpts,
		awsconfig.WithHTTPClient(hc),
		awsconfig.WithRetryMaxAttempts(MaxAttempts))
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3 config: %w", err)
	}
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.PathStyle
		o.APIOptions = append(o.APIOptions, describeErrors(c.Endpoint))
	}), nil
}

// BucketProbe returns a readiness probe that asks S3 for bucket (HeadBucket)
// within ctx's deadline: a hung or unreachable endpoint makes the worker not
// ready, with the endpoint named in the reason.
func BucketProbe(cl *s3.Client, c config.S3) func(ctx context.Context) (string, error) {
	where := c.Endpoint
	if where == "" {
		where = "AWS S3"
	}
	return func(ctx context.Context) (string, error) {
		start := time.Now()
		if _, err := cl.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(c.Bucket)}); err != nil {
			return "", fmt.Errorf("S3 at %s did not answer for bucket %s: %w", where, c.Bucket, err)
		}
		return fmt.Sprintf("S3 at %s answered for bucket %s in %s", where, c.Bucket, time.Since(start).Round(time.Millisecond)), nil
	}
}
