package replay_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/internal/replay"
)

var stack *devstack.Stack

func TestMain(m *testing.M) {
	os.Exit(devstacktest.Main(m, &stack, devstacktest.StackOpts(devstack.WithoutS3()), devstacktest.Child(jobChildEnv, jobChild)))
}

var upper = eos.ProcessorFunc(func(_ context.Context, r *kgo.Record, o *eos.Out) error {
	o.Emit(&kgo.Record{Topic: "rp.out", Key: r.Key, Value: []byte(strings.ToUpper(string(r.Value)))})
	return nil
})

func TestReplayRangeDryRunAndWrite(t *testing.T) {
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaAddrs...), kgo.DefaultProduceTopic("rp.in"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopics(ctx, 1, 1, nil, "rp.in", "rp.out"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("v%02d", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	opts := replay.Options{ClientOpts: []kgo.Opt{kgo.SeedBrokers(stack.KafkaAddrs...)}, DryRun: true}
	r := replay.Range{Topic: "rp.in", FromOffset: 5, ToOffset: 15}
	res, err := replay.Run(ctx, upper, r, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Read != 10 || res.Written["rp.out"] != 10 {
		t.Fatalf("dry run read %d, would write %v; want 10 and 10", res.Read, res.Written)
	}
	ends, _ := adm.ListEndOffsets(ctx, "rp.out")
	if o, _ := ends.Lookup("rp.out", 0); o.Offset != 0 {
		t.Fatalf("dry run wrote %d records", o.Offset)
	}
	opts.DryRun = false
	if res, err = replay.Run(ctx, upper, r, opts); err != nil || res.Read != 10 {
		t.Fatalf("replay: %v, read %d", err, res.Read)
	}
	var got []string
	for _, r := range devstacktest.ReadStable(t, stack, "rp.out") {
		got = append(got, string(r.Value))
	}
	if strings.Join(got, ",") != "V05,V06,V07,V08,V09,V10,V11,V12,V13,V14" {
		t.Fatalf("replayed outputs %v", got)
	}
	// No consumer group was created or moved.
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups.Groups() {
		if !strings.Contains(g, ".testreplayjob") { // the job tests' own groups
			t.Fatalf("replay created consumer groups: %v", groups.Groups())
		}
	}
}
