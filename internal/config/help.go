package config

import (
	"strings"

	"github.com/spf13/pflag"
)

// GroupAnnotation is the pflag annotation that names a shared flag's group
// in help output.
const GroupAnnotation = "pcistream_group"

// flagGroups lists the shared flags' groups in the order help shows them,
// each with the prefixes (or exact names) of its flags.
var flagGroups = []struct {
	name  string
	match []string
}{
	{"Kafka", []string{"brokers", "client-id", "kafka-"}},
	{"Schema registry", []string{"registry-"}},
	{"S3 (audit trail)", []string{"s3-"}},
	{"Topics", []string{"topic-"}},
	{"Logging and metrics", []string{"metrics-addr", "log-"}},
	{"General", []string{""}},
}

// groupFlags annotates every flag of fs with its group.
func groupFlags(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		_ = fs.SetAnnotation(f.Name, GroupAnnotation, []string{groupOf(f.Name)})
	})
}

func groupOf(name string) string {
	for _, g := range flagGroups {
		for _, m := range g.match {
			if m == name || (m == "" || strings.HasSuffix(m, "-")) && strings.HasPrefix(name, m) {
				return g.name
			}
		}
	}
	return "General"
}

// GroupedUsages renders fs's flags under one short heading per group, in a
// fixed order, so a command's help can show its own flags first and the
// shared ones after them without burying either. Flags without a group
// annotation go under "General".
func GroupedUsages(fs *pflag.FlagSet) string {
	sets := map[string]*pflag.FlagSet{}
	fs.VisitAll(func(f *pflag.Flag) {
		g := "General"
		if v := f.Annotations[GroupAnnotation]; len(v) > 0 {
			g = v[0]
		}
		if sets[g] == nil {
			sets[g] = pflag.NewFlagSet(g, pflag.ContinueOnError)
		}
		sets[g].AddFlag(f)
	})
	var b strings.Builder
	for _, g := range flagGroups {
		s := sets[g.name]
		if s == nil {
			continue
		}
		b.WriteString(g.name + ":\n")
		b.WriteString(s.FlagUsages())
		b.WriteString("\n")
	}
	return strings.TrimRight(b.String(), "\n")
}
