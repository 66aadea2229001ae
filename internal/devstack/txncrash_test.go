package devstack_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/kafkax"
)

// The child side of TestCommitCrash: PCISTREAM_TXNCRASH_CHILD names the
// broker ("kfake": a bare kfake cluster on the data dir, as kfake alone
// behaves; "devstack": the dev stack's use of it) and
// PCISTREAM_TXNCRASH_DIR the data dir.
const (
	txnCrashChildEnv = "PCISTREAM_TXNCRASH_CHILD"
	txnCrashDirEnv   = "PCISTREAM_TXNCRASH_DIR"
	txnCrash848Env   = "PCISTREAM_TXNCRASH_KIP848"
	txnCrashInputs   = 50
	txnCrashGroup    = "masker"
)

// TestCommitCrash reproduces a broker SIGKILL inside a committing EndTxn
// of a stateless consume-transform-produce worker (the masker's shape: a
// GroupTransactSession that reads "in", writes "out" and commits its
// offsets in the same transaction; a first transaction over half the input
// commits normally, the kill lands in the second).
//
// A child process runs the broker on a data dir and the worker; right
// before the worker's second EndTxn it records the length of every file kfake
// keeps, the EndTxn commits, and the parent SIGKILLs the child. kfake's
// EndTxn (txns.go, pidinfo.endTx) appends the commit markers to the
// partitions' segment files first, then the group offsets to groups.log,
// then the producer state to pids.log, each with one write call and nothing
// else written meanwhile; every file is append-only. So cutting the files
// back to their recorded lengths gives, byte for byte, the data dir a
// SIGKILL at a chosen point inside EndTxn leaves:
//
//   - "after-markers": groups.log and pids.log cut, the markers kept: the
//     kill landed between the markers and the offsets.
//   - "before-markers": every kfake file cut (the dev stack's journal
//     record, written before kfake handles EndTxn, kept): the kill landed
//     after the dev stack recorded the commit and before any marker.
//
// The broker then restarts on the data dir, the worker resumes from its
// committed offsets and finishes the input, and the test counts the
// outputs read_committed. Bare kfake duplicates the whole transaction
// (documented in kafkabroker/DIFFERENCES.md, section 7); the dev stack
// must not.
func TestCommitCrash(t *testing.T) {
	if devstack.RealKafkaFromEnv() || os.Getenv(devstacktest.BrokersEnv) != "" {
		t.Skip("reproduces a kfake crash image; the real broker's counterpart is TestCommitCrashRealKafka")
	}
	for _, tc := range []struct {
		broker, cut string
		kip848      bool // the worker's group uses KIP-848 (eos.ServerAssign)
		// committed: the group offset after the restart; outputs: the
		// committed outputs once the resumed worker is done.
		committed, outputs int64
	}{
		// kfake alone: the second transaction's 25 outputs twice.
		{"kfake", "after-markers", false, txnCrashInputs / 2, txnCrashInputs + txnCrashInputs/2},
		{"devstack", "after-markers", false, txnCrashInputs, txnCrashInputs},
		{"devstack", "after-markers", true, txnCrashInputs, txnCrashInputs},
		{"devstack", "before-markers", false, txnCrashInputs / 2, txnCrashInputs},
		// Half committed: out-0's outputs of the second transaction twice,
		// none lost (outputs -1: more than the inputs, fewer than 75).
		{"devstack", "inside-markers", false, txnCrashInputs / 2, -1},
	} {
		name := tc.broker + "/" + tc.cut
		var groupOpts []kgo.Opt
		if tc.kip848 {
			name += "/kip848"
			groupOpts = kip848Opts()
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			dir := t.TempDir()
			crashInsideEndTxn(ctx, t, tc.broker, dir, tc.cut, tc.kip848)

			addrs, stop := restartBroker(ctx, t, tc.broker, dir)
			defer stop()
			committed := committedOffset(ctx, t, addrs)
			before := countOutputs(ctx, t, addrs)
			t.Logf("after the restart: %d outputs committed, group offset %d of %d inputs", before, committed, txnCrashInputs)
			if committed != tc.committed {
				t.Errorf("group offset after the restart = %d, want %d", committed, tc.committed)
			}
			if rest := txnCrashInputs - committed; rest > 0 {
				if err := maskInputs(ctx, addrs, []int{int(rest)}, nil, groupOpts...); err != nil {
					t.Fatalf("resumed worker: %v", err)
				}
			}
			got := countOutputs(ctx, t, addrs)
			switch {
			case tc.outputs >= 0 && got != tc.outputs:
				t.Errorf("%d outputs for %d inputs once the resumed worker is done, want %d", got, txnCrashInputs, tc.outputs)
			case tc.outputs < 0 && (got <= txnCrashInputs || got >= txnCrashInputs+txnCrashInputs/2):
				t.Errorf("%d outputs for %d inputs once the resumed worker is done, want some of the second transaction's twice", got, txnCrashInputs)
			}
			if missing := missingOutputs(ctx, t, addrs); len(missing) > 0 {
				t.Errorf("inputs without an output (lost): %v", missing)
			}
		})
	}
}

// crashInsideEndTxn runs the child until its EndTxn has committed,
// SIGKILLs it and cuts kfake's files back to the cut point.
func crashInsideEndTxn(ctx context.Context, t *testing.T, broker, dir, cut string, kip848 bool) {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), txnCrashChildEnv+"="+broker, txnCrashDirEnv+"="+dir)
	if kip848 {
		cmd.Env = append(cmd.Env, txnCrash848Env+"=1")
	}
	var out devstacktest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := filepath.Join(dir, "committed")
	for {
		if _, err := os.Stat(done); err == nil {
			break
		}
		if cmd.ProcessState != nil || ctx.Err() != nil {
			t.Fatalf("child did not commit: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill() // SIGKILL
	_ = cmd.Wait()

	var sizes map[string]int64
	raw, err := os.ReadFile(filepath.Join(dir, "sizes.json"))
	if err == nil {
		err = json.Unmarshal(raw, &sizes)
	}
	if err != nil {
		t.Fatal(err)
	}
	kdir := filepath.Join(dir, "kafka")
	err = filepath.WalkDir(kdir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(kdir, path)
		keep := "partitions" + string(filepath.Separator) // after-markers: every marker
		if cut == "inside-markers" {
			keep = filepath.Join("partitions", "out-0") + string(filepath.Separator) // out-0's marker only
		}
		if cut != "before-markers" && strings.HasPrefix(rel, keep) {
			return nil
		}
		n, ok := sizes[rel]
		if !ok {
			return os.Remove(path) // created inside EndTxn
		}
		return os.Truncate(path, n)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func restartBroker(ctx context.Context, t *testing.T, broker, dir string) ([]string, func()) {
	t.Helper()
	if broker == "kfake" {
		c, err := kfake.NewCluster(bareKfakeOpts(dir)...)
		if err != nil {
			t.Fatal(err)
		}
		return c.ListenAddrs(), c.Close
	}
	var log devstacktest.Buffer
	s, err := devstack.Start(ctx, devstack.WithoutS3(), devstack.DataDir(dir), devstack.GatewayLog(&log))
	if err != nil {
		t.Fatal(err)
	}
	return s.KafkaAddrs, func() { s.Close() }
}

func bareKfakeOpts(dir string) []kfake.Opt {
	return []kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(filepath.Join(dir, "kafka")), kfake.ClusterID("pcistream-dev")}
}

func committedOffset(ctx context.Context, t *testing.T, addrs []string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, txnCrashGroup)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("in", 0); ok && o.Err == nil && o.At >= 0 {
		return o.At
	}
	return 0
}

func countOutputs(ctx context.Context, t *testing.T, addrs []string) int64 {
	t.Helper()
	var n int64
	if err := kafkax.ReadStable(ctx, []kgo.Opt{kgo.SeedBrokers(addrs...)}, "out", func(*kgo.Record) error {
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// missingOutputs returns the inputs that have no committed output.
func missingOutputs(ctx context.Context, t *testing.T, addrs []string) []string {
	t.Helper()
	seen := map[string]bool{}
	if err := kafkax.ReadStable(ctx, []kgo.Opt{kgo.SeedBrokers(addrs...)}, "out", func(r *kgo.Record) error {
		seen[string(r.Key)] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var missing []string
	for i := range txnCrashInputs {
		if k := fmt.Sprintf("event-%d", i); !seen[k] {
			missing = append(missing, k)
		}
	}
	return missing
}

// txnCrashChild is the child process: broker, input, a worker session of
// two transactions over half the input each; it records the file lengths
// right before the second EndTxn and then waits for its SIGKILL.
func txnCrashChild() int {
	if err := runTxnCrashChild(os.Getenv(txnCrashChildEnv), os.Getenv(txnCrashDirEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "txncrash child:", err)
		return 1
	}
	select {}
}

func runTxnCrashChild(broker, dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var addrs []string
	switch broker {
	case "kfake":
		c, err := kfake.NewCluster(bareKfakeOpts(dir)...)
		if err != nil {
			return err
		}
		addrs = c.ListenAddrs()
	case "devstack":
		s, err := devstack.Start(ctx, devstack.WithoutS3(), devstack.DataDir(dir))
		if err != nil {
			return err
		}
		addrs = s.KafkaAddrs
	default:
		return fmt.Errorf("unknown broker %q", broker)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic("in"))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopics(ctx, 1, 1, nil, "in"); err != nil {
		return err
	}
	// Two output partitions: a commit can be cut between their markers.
	if _, err := adm.CreateTopics(ctx, 2, 1, nil, "out"); err != nil {
		return err
	}
	for i := range txnCrashInputs {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "event-%d", i)}).FirstErr(); err != nil {
			return err
		}
	}
	var groupOpts []kgo.Opt
	if os.Getenv(txnCrash848Env) != "" {
		groupOpts = kip848Opts()
	}
	// A first transaction commits normally; the second is the one the
	// kill lands in.
	half := txnCrashInputs / 2
	err = maskInputs(ctx, addrs, []int{half, txnCrashInputs - half}, func() error { return recordSizes(dir) }, groupOpts...)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "committed"), nil, 0o644)
}

// kip848Opts are the group options internal/eos uses with ServerAssign.
func kip848Opts() []kgo.Opt {
	return []kgo.Opt{kgo.ServerSideBalancer(), kgo.Balancers(kgo.StickyBalancer())}
}

// maskInputs is the worker: one session that runs a transaction per
// batch; each reads batch inputs from the group's position, writes one
// output per input and commits. before runs right before the last commit.
func maskInputs(ctx context.Context, addrs []string, batches []int, before func() error, opts ...kgo.Opt) error {
	sess, err := newMaskSession(addrs, opts...)
	if err != nil {
		return err
	}
	defer sess.Close()
	for i, n := range batches {
		if err := sess.Begin(); err != nil {
			return err
		}
		if err := maskBatch(ctx, sess, n); err != nil {
			return err
		}
		if before != nil && i == len(batches)-1 {
			if err := before(); err != nil {
				return err
			}
		}
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil {
			return err
		}
		if !committed {
			return fmt.Errorf("transaction %d did not commit", i+1)
		}
	}
	return nil
}

func newMaskSession(addrs []string, opts ...kgo.Opt) (*kgo.GroupTransactSession, error) {
	return kgo.NewGroupTransactSession(append([]kgo.Opt{kgo.SeedBrokers(addrs...),
		kgo.TransactionalID("masker-0"), kgo.ConsumerGroup(txnCrashGroup), kgo.ConsumeTopics("in"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DefaultProduceTopic("out"), kgo.TransactionTimeout(10 * time.Second)}, opts...)...)
}

// maskBatch reads exactly n inputs (PollRecords: the session commits the
// position of everything polled) and writes one output each.
func maskBatch(ctx context.Context, sess *kgo.GroupTransactSession, n int) error {
	for got := 0; got < n; {
		fs := sess.PollRecords(ctx, n-got)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %d of %d inputs: %w", got, n, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = errors.Join(ferr, err) })
		if ferr != nil {
			return ferr
		}
		for _, r := range fs.Records() {
			out := &kgo.Record{Key: r.Value, Value: append([]byte("masked "), r.Value...)}
			if err := sess.ProduceSync(ctx, out).FirstErr(); err != nil {
				return err
			}
			got++
		}
	}
	return nil
}

// recordSizes writes the length of every file under dir/kafka to
// dir/sizes.json.
func recordSizes(dir string) error {
	kdir := filepath.Join(dir, "kafka")
	sizes := map[string]int64{}
	err := filepath.WalkDir(kdir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(kdir, path)
		sizes[rel] = info.Size()
		return nil
	})
	if err != nil {
		return err
	}
	raw, err := json.Marshal(sizes)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "sizes.json"), raw, 0o644)
}
