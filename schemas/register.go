package schemas

import (
	"context"
	"fmt"
	"sort"

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
	defs, err := Defs()
	if err != nil {
		return nil, err
	}
	byFile := map[string]Def{}
	for _, d := range defs {
		byFile[d.File] = d
	}
	subjects := Subjects(t)
	names := make([]string, 0, len(subjects))
	for s := range subjects {
		names = append(names, s)
	}
	sort.Strings(names)
	var out []Registration
	for _, subj := range names {
		d := byFile[subjects[subj]]
		for _, r := range cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatBackward}, subj) {
			if r.Err != nil {
				return out, fmt.Errorf("set BACKWARD compatibility on %s: %w", subj, r.Err)
			}
		}
		ss, err := cl.CreateSchema(ctx, subj, sr.Schema{Schema: d.Text, Type: sr.TypeAvro})
		if err != nil {
			return out, fmt.Errorf("register %s as %s: %w", d.File, subj, err)
		}
		out = append(out, Registration{Subject: subj, File: d.File, ID: ss.ID, Version: ss.Version})
	}
	return out, nil
}
