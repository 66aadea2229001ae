package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/pan"
)

// TestREADME runs every README command block marked with a line
// `<!-- readme-test: NAME -->` as a new user would type it, one command
// after the other, in an empty directory, against a `pcistream dev` the
// block itself starts. The only changes made to the text are the ports
// (the documented defaults become free ports, so the test can run beside a
// real `pcistream dev`) and the module path of `go build`.
//
// Each command must exit 0 (or, for one ending in `&`, keep running until
// the block ends), print no card number (except `detokenize`, whose job it
// is), and a `kcat -C` must print something.
func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the README's sessions: not in -short mode")
	}
	for _, tool := range []string{"kcat", "bash", "curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install %s); .ci/run installs it", tool, tool)
		}
	}
	blocks, err := readmeBlocks("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) == 0 {
		t.Fatal("README has no <!-- readme-test: NAME --> blocks")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// One session for all blocks, in README order: later sections (the
	// runbook, the first hour) go on in the shell the local session opened,
	// as a reader would.
	s := newSession(t, repo)
	defer func() { s.t = t; s.stop() }()
	for _, b := range blocks {
		if !t.Run(b.name, func(t *testing.T) { s.runBlock(t, b.lines) }) {
			return
		}
	}
}

type readmeBlock struct {
	name  string
	lines []string
}

// readmeBlocks returns the marked ```sh blocks of the file, with
// continuation lines joined.
func readmeBlocks(path string) ([]readmeBlock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	marker := regexp.MustCompile(`^<!-- readme-test: ([\w-]+) -->$`)
	var out []readmeBlock
	var cur *readmeBlock
	in, cont := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil:
			if m := marker.FindStringSubmatch(line); m != nil {
				out = append(out, readmeBlock{name: m[1]})
				cur = &out[len(out)-1]
			}
		case !in:
			in = strings.HasPrefix(line, "```")
		case strings.HasPrefix(line, "```"):
			cur, in = nil, false
		case strings.HasSuffix(line, `\`):
			cont += strings.TrimSuffix(line, `\`) + " "
		default:
			if l := strings.TrimSpace(cont + line); l != "" && !strings.HasPrefix(l, "#") {
				cur.lines = append(cur.lines, l)
			}
			cont = ""
		}
	}
	return out, sc.Err()
}

// session is one README block's world: free ports, an empty directory and
// the processes it started in the background.
type session struct {
	t     *testing.T
	dir   string
	env   []string
	subst *strings.Replacer
	bg    []*bgProc
	det   *pan.Detector
}

type bgProc struct {
	line string
	cmd  *exec.Cmd
	out  *devstacktest.Buffer
	done chan struct{}
}

// runBlock runs one block's lines in s, failing t.
func (s *session) runBlock(t *testing.T, lines []string) {
	s.t = t
	for _, line := range lines {
		if !s.allRunning() {
			return
		}
		line = s.subst.Replace(line)
		cmdLine, comment, _ := strings.Cut(line, " #")
		cmdLine = strings.TrimSpace(cmdLine)
		// "# → TEXT" after a command is the output the README promises.
		_, want, expect := strings.Cut(comment, "→ ")
		if bg, ok := strings.CutSuffix(cmdLine, "&"); ok {
			s.start(strings.TrimSpace(bg))
			continue
		}
		if m := assignment.FindStringSubmatch(cmdLine); m != nil {
			// A shell variable the following lines use: each line runs
			// in its own bash, so keep it in the session's environment.
			s.env = append(s.env, m[1]+"="+s.run(cmdLine+`; printf %s "$`+m[1]+`"`))
			continue
		}
		out := s.run(cmdLine)
		if want = strings.TrimSpace(want); expect && !strings.Contains(out, want) {
			t.Fatalf("%s: output lacks %q:\n%s", s.masked(cmdLine), s.masked(want), s.masked(out))
		}
	}
	s.allRunning()
}

var assignment = regexp.MustCompile(`^([A-Z_][A-Z0-9_]*)=\S`)

func newSession(t *testing.T, repo string) *session {
	ports := freePorts(t, 9)
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	pairs := []string{
		"127.0.0.1:9092", addr(0), "127.0.0.1:8081", addr(1), "127.0.0.1:7070", addr(2),
		"go build -o pcistream ./cmd/pcistream", "go build -C " + repo + ` -o "$PWD/pcistream" ./cmd/pcistream`,
	}
	for i := 0; i < 5; i++ { // metrics ports 9464..9468
		pairs = append(pairs, fmt.Sprintf("127.0.0.1:%d", 9464+i), addr(3+i))
	}
	pairs = append(pairs, "127.0.0.1:8443", addr(8)) // the gateway's API
	env := append(os.Environ(),
		"PCISTREAM_KAFKA_ADDR="+addr(0), "PCISTREAM_REGISTRY_ADDR="+addr(1), "PCISTREAM_S3_ADDR="+addr(2),
		"PCISTREAM_LISTEN="+addr(8),
		"PCISTREAM_BROKERS="+addr(0), "PCISTREAM_REGISTRY_URL=http://"+addr(1), "PCISTREAM_S3_ENDPOINT=http://"+addr(2),
		"PATH="+os.Getenv("PATH"))
	return &session{t: t, dir: t.TempDir(), env: env, subst: strings.NewReplacer(pairs...), det: pan.New()}
}

func freePorts(t *testing.T, n int) []int {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func (s *session) command(ctx context.Context, line string) *exec.Cmd {
	c := exec.CommandContext(ctx, "bash", "-c", line)
	c.Dir, c.Env = s.dir, s.env
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	return c
}

// run runs a foreground command, checks its outcome and returns its
// standard output.
func (s *session) run(line string) string {
	s.t.Logf("$ %s", s.masked(line))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := s.command(ctx, line)
	// Separate buffers: exec copies stdout and stderr in two goroutines.
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	text := stdout.String() + stderr.String()
	if !strings.Contains(line, "detokenize") {
		s.noPAN(line, text)
	}
	if err != nil {
		s.t.Fatalf("%s: %v\n%s", s.masked(line), err, s.masked(text))
	}
	if strings.HasPrefix(line, "kcat") && strings.Contains(line, " -C") && strings.TrimSpace(text) == "" {
		s.t.Fatalf("%s printed nothing (%q, %q)", s.masked(line), s.masked(text), s.masked(stdout.String()))
	}
	return stdout.String()
}

// start runs a background command; `pcistream dev` is waited for until its
// ports answer, as a person would wait for its banner.
func (s *session) start(line string) {
	s.t.Logf("$ %s &", s.masked(line))
	c := s.command(context.Background(), line)
	p := &bgProc{line: s.masked(line), cmd: c, out: &devstacktest.Buffer{}, done: make(chan struct{})}
	c.Stdout, c.Stderr = p.out, p.out
	if err := c.Start(); err != nil {
		s.t.Fatalf("%s: %v", line, err)
	}
	go func() { _ = c.Wait(); close(p.done) }()
	s.bg = append(s.bg, p)
	if strings.Contains(line, "pcistream dev") {
		s.waitBanner(p)
	}
}

func (s *session) waitBanner(p *bgProc) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			s.t.Fatalf("%s exited:\n%s", p.line, s.masked(p.out.String()))
		case <-time.After(200 * time.Millisecond):
		}
		if strings.Contains(p.out.String(), "Ctrl-C to stop") {
			return
		}
	}
	s.t.Fatalf("%s: no banner within 2 minutes:\n%s", p.line, s.masked(p.out.String()))
}

// allRunning fails the test if a background command has exited: a
// trailing & must not hide a worker that gave up.
func (s *session) allRunning() bool {
	for _, p := range s.bg {
		select {
		case <-p.done:
			s.t.Errorf("%s & exited early:\n%s", p.line, s.masked(p.out.String()))
			return false
		default:
		}
	}
	return true
}

func (s *session) stop() {
	for _, p := range s.bg {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	}
	for _, p := range s.bg {
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		s.noPAN(p.line, p.out.String())
	}
}

func (s *session) noPAN(line, text string) {
	if s.det.ContainsString(text) {
		s.t.Errorf("%s printed a card number:\n%s", s.masked(line), s.masked(text))
	}
}

func (s *session) masked(text string) string {
	m, _ := s.det.MaskString(text, pan.Last4)
	if len(m) > 4000 {
		m = "…" + m[len(m)-4000:]
	}
	return m
}
