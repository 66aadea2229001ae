package schemas

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
)

// UnreachableError is a schema registry that did not answer. Its message is
// the endpoint and the network cause alone: the registry client wraps a
// transport error in the method and URL twice ("unable to PUT …: Put …:
// dial tcp …"), which says nothing a user can act on.
type UnreachableError struct {
	Endpoint string // scheme://host of the registry
	err      error
}

func (e *UnreachableError) Error() string {
	cause := "no answer"
	var oe *net.OpError
	switch {
	case errors.Is(e.err, context.DeadlineExceeded):
		cause = fmt.Sprintf("no answer within %s", RegistryTimeout)
	case errors.As(e.err, &oe) && oe.Err != nil:
		cause = oe.Err.Error()
	}
	return fmt.Sprintf("schema registry at %s unreachable (%s): start `pcistream dev` or check --registry-url", e.Endpoint, cause)
}

// Unwrap returns the registry client's error.
func (e *UnreachableError) Unwrap() error { return e.err }

// unreachable returns err as an *UnreachableError when it is a transport
// failure (no HTTP answer), and nil otherwise.
func unreachable(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return nil
	}
	ep := ue.URL
	if u, perr := url.Parse(ue.URL); perr == nil {
		ep = u.Scheme + "://" + u.Host
	}
	return &UnreachableError{Endpoint: ep, err: err}
}
