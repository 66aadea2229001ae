// Package results writes a benchmark's section of bench/RESULTS.md, so the
// benchmarks share one file without overwriting each other.
package results

import (
	"errors"
	"os"
	"strings"
)

// UpdateSection replaces the text between name's markers
// (<!-- name:begin --> and <!-- name:end -->) in the file at path with md,
// or appends the section, and leaves the rest of the file alone.
func UpdateSection(path, name, md string) error {
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s := string(old)
	section := begin + "\n" + md + end
	i, j := strings.Index(s, begin), strings.Index(s, end)
	switch {
	case i >= 0 && j > i:
		s = s[:i] + section + s[j+len(end):]
	case s == "":
		s = "# Benchmark results\n\n" + section + "\n"
	default:
		s = strings.TrimRight(s, "\n") + "\n\n" + section + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
