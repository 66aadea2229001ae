package s3x_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/s3x"
)

var stack *devstack.Stack

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }

// TestErrorsSayWhatToFix runs the common mistakes against the embedded S3
// and checks each error is one line that names the endpoint and the fix,
// without the SDK's "https response error" on a plain-HTTP endpoint.
func TestErrorsSayWhatToFix(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := stack

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	wrongKey := st.S3
	wrongKey.SecretKey = "not-the-secret"
	down := st.S3
	down.Endpoint = closed

	cases := []struct {
		name string
		cfg  func() (*s3.Client, error)
		op   func(*s3.Client) error
		want []string
		code string
	}{
		{"missing bucket", func() (*s3.Client, error) { return s3x.NewClient(ctx, st.S3) },
			func(c *s3.Client) error {
				_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("no-such-bucket")})
				return err
			}, []string{st.S3.Endpoint, "NoSuchBucket", "check --s3-bucket"}, "NoSuchBucket"},
		{"wrong secret", func() (*s3.Client, error) { return s3x.NewClient(ctx, wrongKey) },
			func(c *s3.Client) error {
				_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(st.S3.Bucket)})
				return err
			}, []string{st.S3.Endpoint, "HTTP 403", "check --s3-access-key"}, "SignatureDoesNotMatch"},
		{"unreachable", func() (*s3.Client, error) { return s3x.NewClient(ctx, down) },
			func(c *s3.Client) error {
				_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(st.S3.Bucket)})
				return err
			}, []string{"cannot reach S3 at " + closed, "check --s3-endpoint"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := tc.cfg()
			if err != nil {
				t.Fatal(err)
			}
			err = tc.op(cl)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, "https response error") || strings.Contains(msg, "\n") {
				t.Errorf("error %q has protocol noise or several lines", msg)
			}
			var se *s3x.Error
			if !errors.As(err, &se) {
				t.Errorf("error %T is not an *s3x.Error", err)
			}
			var ae smithy.APIError
			if tc.code != "" && (!errors.As(err, &ae) || ae.ErrorCode() != tc.code) {
				t.Errorf("error code lost through the wrapper: %v", err)
			}
		})
	}
}
