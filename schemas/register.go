package schemas

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/pcistream/pcistream/internal/config"
)

// Registration is the outcome of registering one subject.
type Registration struct {
	Subject string
	File    string
	ID      int
	Version int
}

// Register sets BACKWARD compatibility on every pcistream subject and
// registers the embedded schemas. It is idempotent: an unchanged schema keeps
// its id. The registry rejects an incompatible change, and so does Register.
func Register(ctx context.Context, cl *sr.Client, t config.Topics) ([]Registration, error) {
	sds, err := subjectDefs(t)
	if err != nil {
		return nil, err
	}
	var out []Registration
	for _, sd := range sds {
		subj, d := sd.subject, sd.def
		for _, r := range cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatBackward}, subj) {
			if r.Err != nil {
				err := r.Err
				if ue := unreachable(err); ue != nil {
					err = ue
				}
				return out, fmt.Errorf("set BACKWARD compatibility on %s: %w", subj, err)
			}
		}
		ss, err := cl.CreateSchema(ctx, subj, sr.Schema{Schema: d.Text, Type: sr.TypeAvro})
		if err != nil {
			if ue := unreachable(err); ue != nil {
				err = ue
			}
			return out, fmt.Errorf("register %s as %s: %w", d.File, subj, err)
		}
		out = append(out, Registration{Subject: subj, File: d.File, ID: ss.ID, Version: ss.Version})
	}
	return out, nil
}
