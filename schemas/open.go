package schemas

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/pcistream/pcistream/internal/config"
)

// RegistryTimeout bounds every schema-registry request.
const RegistryTimeout = 10 * time.Second

// NewClient returns a schema-registry client for r.
func NewClient(r config.Registry) (*sr.Client, error) {
	if r.URL == "" {
		return nil, fmt.Errorf("no schema registry configured: set --registry-url or PCISTREAM_REGISTRY_URL")
	}
	// Every registry call has a deadline: a hung registry is an error the
	// operator sees, not a worker that hangs at start.
	opts := []sr.ClientOpt{sr.URLs(strings.Split(r.URL, ",")...), sr.HTTPClient(&http.Client{
		Timeout: RegistryTimeout,
		Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			TLSHandshakeTimeout: 5 * time.Second, ResponseHeaderTimeout: RegistryTimeout},
	})}
	if r.Username != "" {
		opts = append(opts, sr.BasicAuth(r.Username, r.Password))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("schema registry client: %w", err)
	}
	return cl, nil
}

// Open connects to the registry described by r and returns the serde for
// t's subjects: the one way every command and the demo reach the registry.
// The schemas must be registered (Register, `pcistream schemas register`).
func Open(ctx context.Context, r config.Registry, t config.Topics) (*Serde, error) {
	cl, err := NewClient(r)
	if err != nil {
		return nil, err
	}
	s, err := NewSerde(ctx, cl, t)
	var ue *UnreachableError
	if err != nil && !errors.As(err, &ue) { // an UnreachableError names the registry already
		return nil, fmt.Errorf("schemas (registry %s): %w", r.URL, err)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Client is the registry client the serde looks schemas up with.
func (s *Serde) Client() *sr.Client { return s.cl }

// subjectDef is one subject and the definition registered under it.
type subjectDef struct {
	subject string
	def     Def
}

// subjectDefs lists t's subjects, sorted, with their definitions.
func subjectDefs(t config.Topics) ([]subjectDef, error) {
	defs, err := Defs()
	if err != nil {
		return nil, err
	}
	byFile := map[string]Def{}
	for _, d := range defs {
		byFile[d.File] = d
	}
	subjects := Subjects(t)
	out := make([]subjectDef, 0, len(subjects))
	for subj, file := range subjects {
		out = append(out, subjectDef{subj, byFile[file]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].subject < out[j].subject })
	return out, nil
}
