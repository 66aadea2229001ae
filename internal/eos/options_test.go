package eos_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/eos"
)

// TestOptionsValidated: a bad option value is refused by New, with the
// option named, instead of misbehaving at run time.
func TestOptionsValidated(t *testing.T) {
	noop := eos.ProcessorFunc(func(context.Context, *kgo.Record, *eos.Out) error { return nil })
	for _, tc := range []struct {
		opt  eos.Opt
		want string
	}{
		{eos.MaxPollRecords(0), "MaxPollRecords(0)"},
		{eos.MaxRetries(-1), "MaxRetries(-1)"},
		{eos.TxnTimeout(0), "TxnTimeout(0s)"},
		{eos.TxnTimeout(time.Hour), "TxnTimeout(1h0m0s)"},
		{eos.SessionTimeout(time.Second), "SessionTimeout(1s)"},
		{eos.Backoff(-time.Second), "Backoff(-1s)"},
		{eos.StallAfter(0), "StallAfter(0s)"},
		{eos.Topics("in", ""), `Topics("")`},
	} {
		_, err := eos.New(noop, eos.Topics("in"), tc.opt)
		if err == nil || !strings.Contains(err.Error(), "invalid option "+tc.want) {
			t.Errorf("%s: New = %v, want an error naming the option", tc.want, err)
		}
	}
	if _, err := eos.New(noop, eos.Topics("in"), eos.MaxPollRecords(1), eos.MaxRetries(0), eos.SessionTimeout(6*time.Second)); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
}
