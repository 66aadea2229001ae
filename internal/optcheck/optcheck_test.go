package optcheck

import (
	"strings"
	"testing"
	"time"
)

func TestCheckNamesTheOption(t *testing.T) {
	err := Check("eos", AtLeast("MaxPollRecords", 0, 1), Between("TxnTimeout", 20*time.Minute, time.Second, 15*time.Minute), NotEmpty("Name", "ok"))
	if err == nil {
		t.Fatal("invalid options accepted")
	}
	for _, want := range []string{"eos: invalid option MaxPollRecords(0): must be at least 1", "invalid option TxnTimeout(20m0s): must be between 1s and 15m0s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := Check("eos", AtLeast("MaxRetries", 0, 0), NotEmpty("Name", "x")); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
}
