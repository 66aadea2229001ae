// Package optcheck validates option values where a constructor applies
// them, with errors that name the option and the accepted range (the way
// franz-go's kgo.NewClient validates its config), so a bad flag fails at
// start with a one-line reason instead of misbehaving later.
package optcheck

import (
	"cmp"
	"errors"
	"fmt"
)

// AtLeast reports an error unless v, the value given to option name, is at
// least lo.
func AtLeast[T cmp.Ordered](name string, v, lo T) error {
	if v < lo {
		return fmt.Errorf("invalid option %s(%v): must be at least %v", name, v, lo)
	}
	return nil
}

// Between reports an error unless lo <= v <= hi.
func Between[T cmp.Ordered](name string, v, lo, hi T) error {
	if v < lo || v > hi {
		return fmt.Errorf("invalid option %s(%v): must be between %v and %v", name, v, lo, hi)
	}
	return nil
}

// NotEmpty reports an error when v, the value given to option name, is empty.
func NotEmpty(name, v string) error {
	if v == "" {
		return fmt.Errorf("invalid option %s(%q): must not be empty", name, v)
	}
	return nil
}

// Check joins the errors of the checks under the component's name
// ("eos: invalid option MaxPollRecords(0): must be at least 1"), or returns
// nil when every check passed.
func Check(component string, errs ...error) error {
	err := errors.Join(errs...)
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", component, err)
}
