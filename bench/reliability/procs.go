package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// freePort returns a loopback port nothing listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// devProc is `pcistream dev --data-dir` as a child process, restartable on
// the same ports and data dir.
type devProc struct {
	bin, dir, logDir        string
	kafka, registry, s3port int
	cmd                     *exec.Cmd
	starts                  int
}

func newDev(bin, dir string) (*devProc, error) {
	d := &devProc{bin: bin, dir: filepath.Join(dir, "dev"), logDir: dir}
	for _, p := range []*int{&d.kafka, &d.registry, &d.s3port} {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		*p = port
	}
	return d, nil
}

func (d *devProc) brokers() string     { return addr(d.kafka) }
func (d *devProc) registryURL() string { return "http://" + addr(d.registry) }
func (d *devProc) s3Endpoint() string  { return "http://" + addr(d.s3port) }

// start runs the stack and waits until it says it is up.
func (d *devProc) start(ctx context.Context) error {
	d.starts++
	logf, err := os.Create(filepath.Join(d.logDir, fmt.Sprintf("dev-%d.log", d.starts)))
	if err != nil {
		return err
	}
	d.cmd = exec.Command(d.bin, "dev", "--data-dir", d.dir, "--kafka-addr", addr(d.kafka),
		"--registry-addr", addr(d.registry), "--s3-addr", addr(d.s3port), "--log-level", "warn")
	d.cmd.Env = cleanEnv()
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	d.cmd.Stderr = logf
	if err := d.cmd.Start(); err != nil {
		return err
	}
	up := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if !sent && strings.Contains(sc.Text(), "Ctrl-C to stop") {
				up <- nil
				sent = true
			}
		}
		if !sent {
			up <- fmt.Errorf("pcistream dev exited before it was up (see %s)", logf.Name())
		}
		logf.Close()
	}()
	select {
	case err := <-up:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(3 * time.Minute):
		return fmt.Errorf("pcistream dev not up within 3m (see %s)", logf.Name())
	}
}

// stop signals the stack and waits for it to exit.
func (d *devProc) stop(sig syscall.Signal) {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(sig) //nolint:errcheck
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }() //nolint:errcheck
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill() //nolint:errcheck
		<-done
	}
	d.cmd = nil
}

// cleanEnv is the environment without PCISTREAM_* settings of the caller,
// so a developer's shell cannot point the suite elsewhere.
func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PCISTREAM_") {
			env = append(env, e)
		}
	}
	return env
}

// worker is one `pcistream run <processor>` child process.
type worker struct {
	name    string
	args    []string
	bin     string
	logDir  string
	metrics int
	cmd     *exec.Cmd
	exited  chan error
	starts  int

	mu       sync.Mutex
	exitErrs []string // unexpected exits
}

func (w *worker) start() error {
	w.starts++
	logf, err := os.Create(filepath.Join(w.logDir, fmt.Sprintf("%s-%d.log", w.name, w.starts)))
	if err != nil {
		return err
	}
	args := append(append([]string{}, w.args...), "--metrics-addr", addr(w.metrics), "--log-level", "info")
	w.cmd = exec.Command(w.bin, args...)
	w.cmd.Env = cleanEnv()
	w.cmd.Stdout, w.cmd.Stderr = logf, logf
	if err := w.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	w.exited = make(chan error, 1)
	cmd := w.cmd
	go func() {
		err := cmd.Wait()
		logf.Close()
		w.exited <- err
	}()
	return nil
}

// kill sends sig and waits for the exit; an exit not caused by sig is
// recorded as unexpected.
func (w *worker) kill(sig syscall.Signal) {
	if w.cmd == nil {
		return
	}
	w.cmd.Process.Signal(sig) //nolint:errcheck
	select {
	case <-w.exited:
	case <-time.After(60 * time.Second):
		w.cmd.Process.Kill() //nolint:errcheck
		<-w.exited
	}
	w.cmd = nil
}

// alive reports whether the worker is still running; a worker that exited
// by itself is recorded.
func (w *worker) alive() bool {
	if w.cmd == nil {
		return false
	}
	select {
	case err := <-w.exited:
		w.mu.Lock()
		w.exitErrs = append(w.exitErrs, fmt.Sprintf("%s exited by itself: %v", w.name, err))
		w.mu.Unlock()
		w.cmd = nil
		return false
	default:
		return true
	}
}

var commitsRe = regexp.MustCompile(`(?m)^pcistream_txn_commits_total\{[^}]*\} ([0-9.e+]+)$`)

// commits reads the worker's committed-transaction counter; -1 when the
// metrics endpoint does not answer.
func (w *worker) commits() float64 {
	cl := http.Client{Timeout: time.Second}
	resp, err := cl.Get("http://" + addr(w.metrics) + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := commitsRe.FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// readyz returns the worker's /readyz status code and body.
func (w *worker) readyz() (int, string) {
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get("http://" + addr(w.metrics) + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitCommitting waits until the worker's commit counter passes above, and
// returns when that happened.
func (w *worker) waitCommitting(ctx context.Context, above float64, limit time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if c := w.commits(); c > above {
			return time.Now(), true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Time{}, false
}

// waitBack waits until a restarted worker commits a transaction, or until
// idle says the group has nothing left (a restart slower than the session
// timeout hands the worker's partitions to another member, which may drain
// them: the worker is then back with nothing to commit).
func (w *worker) waitBack(ctx context.Context, idle func() bool, limit time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(limit)
	for n := 0; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
		if c := w.commits(); c > 0 {
			return time.Now(), true
		}
		if n%20 == 19 && idle() {
			return time.Now(), true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Time{}, false
}
