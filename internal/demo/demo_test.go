package demo_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/demo"
	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/pan"
)

// TestDemoEndToEnd runs the whole product on the embedded stack and
// requires every check to hold; its printed summary must not carry a PAN.
func TestDemoEndToEnd(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	st, err := devstack.StartFromEnv(ctx) // kfake, or real Kafka when PCISTREAM_TEST_BROKER=kafka
	cancel()
	if devstack.NoJava(err) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sum, err := demo.Run(context.Background(), demo.Options{Out: &out, Payments: 60, Timeout: 2 * time.Minute, Stack: st})
	if err != nil {
		t.Fatal(err)
	}
	demo.Print(&out, sum, config.DefaultTopics())
	if !sum.OK() {
		t.Fatalf("demo checks failed:\n%s", masked(out.String()))
	}
	if pan.New().Contains(out.Bytes()) {
		t.Fatal("the demo's output contains a PAN")
	}
	if !strings.Contains(out.String(), "checks passed") {
		t.Fatalf("summary does not say the checks passed:\n%s", out.String())
	}
}

func masked(s string) string {
	m, _ := pan.New().MaskString(s, pan.First6Last4)
	return m
}
