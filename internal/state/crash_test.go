package state

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// The child half of TestBulkSurvivesSIGKILL: ingest with checkpoint, report,
// and wait to be killed with the store open.
func TestMain(m *testing.M) {
	if dir := os.Getenv("STATE_TEST_CRASH_DIR"); dir != "" {
		s, err := Open(dir, StoreOpts{CacheBytes: 1 << 20, Logger: quiet()})
		if err != nil {
			fmt.Println("err", err)
			os.Exit(1)
		}
		var puts []Put
		for i := range 5000 {
			puts = append(puts, Put{Key: fmt.Appendf(nil, "k%05d", (i*7919)%5000), Value: []byte("v"), TS: int64(i)})
		}
		if err := s.Ingest(0, puts, Checkpoint{Next: 5000}); err != nil {
			fmt.Println("err", err)
			os.Exit(1)
		}
		fmt.Println("ok")
		select {}
	}
	os.Exit(m.Run())
}

// A process SIGKILLed right after a bulk load keeps it with its checkpoint:
// what a restarted worker relies on to replay only the tail. (Batches are
// not synced: a SIGKILL may lose the last ones, with their checkpoints.)
func TestBulkSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "STATE_TEST_CRASH_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	cmd.Process.Kill()
	cmd.Wait()
	if line != "ok\n" {
		t.Fatalf("child: %q", line)
	}
	s := openStore(t, dir)
	defer s.Close()
	cp, ok, err := s.Checkpoint(0)
	if err != nil || !ok || cp.Next != 5000 {
		t.Fatalf("checkpoint after SIGKILL: %+v held=%v err=%v, want next 5000", cp, ok, err)
	}
	if n, _ := s.Count(0); n != 5000 {
		t.Fatalf("%d entries after SIGKILL, want 5000", n)
	}
}
