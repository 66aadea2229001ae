package replay_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/eos"
	"github.com/pcistream/pcistream/internal/replay"
)

// jobChildEnv makes the test binary run a replay job that stops, mid-
// transaction, at the input offset it names (see jobChild).
const jobChildEnv = "PCISTREAM_REPLAY_JOB_CHILD"

// jobInput creates in (3 partitions) and out, writes n records to in and
// commits offsets for a "live" group, returning that group.
func jobInput(t *testing.T, n int) (in, out, live string, adm *kadm.Client) {
	t.Helper()
	in, out, live = devstacktest.Name(t, "job.in"), devstacktest.Name(t, "job.out"), devstacktest.Name(t, "live")
	devstacktest.CreateTopic(t, stack, in, 3)
	devstacktest.CreateTopic(t, stack, out, 3)
	cl := devstacktest.Client(t, stack, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := 0; i < n; i++ {
		r := &kgo.Record{Topic: in, Partition: int32(i % 3), Value: []byte(fmt.Sprintf("v%03d", i))}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm = kadm.NewClient(cl)
	off := kadm.Offsets{}
	for p := int32(0); p < 3; p++ {
		off.Add(kadm.Offset{Topic: in, Partition: p, At: int64(p + 1), LeaderEpoch: -1})
	}
	if err := adm.CommitAllOffsets(context.Background(), live, off); err != nil {
		t.Fatal(err)
	}
	return in, out, live, adm
}

// upperTo returns a processor that upper-cases into topic out.
func upperTo(out string) eos.Processor {
	return eos.ProcessorFunc(func(_ context.Context, r *kgo.Record, o *eos.Out) error {
		o.Emit(&kgo.Record{Topic: out, Key: r.Key, Value: []byte(strings.ToUpper(string(r.Value)))})
		return nil
	})
}

// assertOnce checks that out holds V000..V<n-1> exactly once each, read
// committed, and that the live group's offsets are as jobInput left them.
func assertOnce(t *testing.T, adm *kadm.Client, in, out, live string, n int) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range devstacktest.ReadStable(t, stack, out) {
		seen[string(r.Value)]++
	}
	for i := 0; i < n; i++ {
		if v := fmt.Sprintf("V%03d", i); seen[v] != 1 {
			t.Errorf("%s written %d times, want once", v, seen[v])
		}
	}
	if len(seen) != n {
		t.Errorf("out holds %d distinct records, want %d", len(seen), n)
	}
	got, err := adm.FetchOffsets(context.Background(), live)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 3; p++ {
		if o, _ := got.Lookup(in, p); o.At != int64(p+1) {
			t.Errorf("live group offset of partition %d moved to %d", p, o.At)
		}
	}
}

func TestReplayJobResumesAfterCancel(t *testing.T) {
	const n = 60
	in, out, live, adm := jobInput(t, n)
	group := devstacktest.Name(t, "pcistream-replay-job")
	opts := replay.Options{ClientOpts: devstacktest.Opts(stack), Group: group, BatchSize: 4}
	r := replay.Range{Topic: in, FromOffset: -1, ToOffset: -1}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := opts
	first.Progress = func(res replay.Result) {
		if res.Batches == 2 {
			cancel()
		}
	}
	res, err := replay.Run(ctx, upperTo(out), r, first)
	if !errors.Is(err, context.Canceled) || res.Batches != 2 || res.Read == 0 || res.Read >= n {
		t.Fatalf("interrupted run: err %v, %d batches, read %d", err, res.Batches, res.Read)
	}
	firstRead := res.Read

	// A dry run of the job reports what is left and commits nothing.
	dry := opts
	dry.DryRun = true
	if res, err = replay.Run(context.Background(), upperTo(out), r, dry); err != nil || res.Read != n-firstRead {
		t.Fatalf("dry run after interruption: %v, read %d, want %d", err, res.Read, n-firstRead)
	}
	res, err = replay.Run(context.Background(), upperTo(out), r, opts)
	if err != nil || res.Read != n-firstRead || len(res.Resumed) == 0 || res.Finished {
		t.Fatalf("resumed run: %v, read %d (want %d), resumed %v, finished %v", err, res.Read, n-firstRead, res.Resumed, res.Finished)
	}
	assertOnce(t, adm, in, out, live, n)

	res, err = replay.Run(context.Background(), upperTo(out), r, opts)
	if err != nil || !res.Finished || res.Read != 0 || len(res.Written) != 0 {
		t.Fatalf("finished job re-run: %v, finished %v, read %d, wrote %v", err, res.Finished, res.Read, res.Written)
	}
	assertOnce(t, adm, in, out, live, n)
}

// TestReplayJobResumesAfterKill kills a replay job while its transaction
// holds produced but uncommitted outputs; the re-run fences that
// transaction and writes every output once.
func TestReplayJobResumesAfterKill(t *testing.T) {
	const n = 45
	in, out, live, adm := jobInput(t, n)
	group := devstacktest.Name(t, "pcistream-replay-job")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), jobChildEnv+"=1", "JOB_BROKERS="+strings.Join(stack.KafkaAddrs, ","),
		"JOB_IN="+in, "JOB_OUT="+out, "JOB_GROUP="+group)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "blocked") {
		_ = cmd.Process.Kill()
		t.Fatalf("child: %q, %v", line, err)
	}
	_ = cmd.Process.Kill() // SIGKILL: no abort, no close
	_ = cmd.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := replay.Options{ClientOpts: devstacktest.Opts(stack), Group: group, BatchSize: 4}
	res, err := replay.Run(ctx, upperTo(out), replay.Range{Topic: in, FromOffset: -1, ToOffset: -1}, opts)
	if err != nil || len(res.Resumed) == 0 || res.Read == 0 || res.Read >= n {
		t.Fatalf("resumed run: %v, read %d, resumed %v", err, res.Read, res.Resumed)
	}
	assertOnce(t, adm, in, out, live, n)
}

// jobChild runs the job of TestReplayJobResumesAfterKill: after two
// committed batches it emits outputs of the third and then blocks inside the
// open transaction, telling the parent so on stdout.
func jobChild() int {
	out := os.Getenv("JOB_OUT")
	batches := 0
	inBatch := 0
	p := eos.ProcessorFunc(func(ctx context.Context, r *kgo.Record, o *eos.Out) error {
		o.Emit(&kgo.Record{Topic: out, Value: []byte(strings.ToUpper(string(r.Value)))})
		if batches == 2 {
			inBatch++
			if inBatch == 3 {
				// Let the first outputs of this batch reach the broker.
				time.Sleep(time.Second)
				fmt.Println("blocked")
				select {}
			}
		}
		return nil
	})
	opts := replay.Options{
		ClientOpts: []kgo.Opt{kgo.SeedBrokers(strings.Split(os.Getenv("JOB_BROKERS"), ",")...)},
		Group:      os.Getenv("JOB_GROUP"),
		BatchSize:  4,
		Progress:   func(res replay.Result) { batches = res.Batches },
	}
	_, err := replay.Run(context.Background(), p, replay.Range{Topic: os.Getenv("JOB_IN"), FromOffset: -1, ToOffset: -1}, opts)
	fmt.Fprintln(os.Stderr, "child replay ended:", err)
	return 1
}
