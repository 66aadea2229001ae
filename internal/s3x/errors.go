package s3x

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Error is an S3 failure told in one line: which endpoint, what it answered
// and, where pcistream knows it, what to do. It wraps the SDK's error, so
// errors.As still finds smithy.APIError and the HTTP response.
type Error struct {
	Endpoint string
	err      error
}

// Error says what the endpoint answered, without the SDK's "https response
// error StatusCode: …, RequestID: …" (which says https even over http).
func (e *Error) Error() string {
	where := e.Endpoint
	if where == "" {
		where = "AWS"
	}
	var ae smithy.APIError
	var re *smithyhttp.ResponseError
	var ne net.Error
	var se *smithyhttp.RequestSendError
	switch {
	case errors.Is(e.err, context.DeadlineExceeded):
		return fmt.Sprintf("S3 at %s did not answer in time (is it running and reachable? check --s3-endpoint)", where)
	case errors.As(e.err, &ne) || errors.As(e.err, &se):
		return fmt.Sprintf("cannot reach S3 at %s (is it running? check --s3-endpoint): %v", where, netCause(e.err))
	case errors.As(e.err, &ae) && errors.As(e.err, &re) && re.HTTPStatusCode() > 0:
		msg := fmt.Sprintf("S3 at %s answered HTTP %d %s", where, re.HTTPStatusCode(), ae.ErrorCode())
		if m := ae.ErrorMessage(); m != "" && m != ae.ErrorCode() {
			msg += ": " + m
		}
		return msg + hint(ae.ErrorCode())
	case errors.As(e.err, &re) && re.HTTPStatusCode() > 0:
		return fmt.Sprintf("S3 at %s answered HTTP %d", where, re.HTTPStatusCode())
	}
	return fmt.Sprintf("S3 at %s: %v", where, e.err)
}

// Unwrap returns the SDK's error.
func (e *Error) Unwrap() error { return e.err }

func hint(code string) string {
	switch code {
	case "NoSuchBucket":
		return " (check --s3-bucket and --s3-endpoint)"
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return " (check --s3-access-key and PCISTREAM_S3_SECRET_KEY)"
	}
	return ""
}

// describeErrors installs a middleware that turns every failed operation's
// error into an *Error naming endpoint. It sits at the top of the stack, so
// it sees the error after the SDK's retries gave up.
func describeErrors(endpoint string) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("pcistreamDescribeErrors",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleInitialize(ctx, in)
				if err != nil {
					err = &Error{Endpoint: endpoint, err: err}
				}
				return out, md, err
			}), middleware.Before)
	}
}

// netCause is the innermost network error's text ("connect: connection
// refused"), without the SDK's retry and request wrapping.
func netCause(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return ne.Error()
	}
	return "request not sent"
}
