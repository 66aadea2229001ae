// Package kafkabroker runs a real, single-node Apache Kafka 4.x broker (KRaft,
// combined broker and controller) for tests and benchmarks, so that the claims
// pcistream makes about transactions can be checked against Kafka's own
// transaction coordinator and not only against kfake.
//
// The broker's classpath is not vendored. The pom.xml beside this file (also
// embedded in the package) lists org.apache.kafka:kafka_2.13; Maven's
// dependency:copy-dependencies copies it and its runtime dependencies into a
// cache directory once (LibDir), and every later start reuses it:
//
//	go run ./internal/devstack/kafkabroker/fetch    # or: .ci/run does it
//
// Start formats a temporary directory with kafka.tools.StorageTool, runs
// kafka.Kafka on free loopback ports with a 512 MiB heap and returns once the
// broker answers metadata and its group and transaction coordinators are up.
// Only Java 17+ is needed at run time; Maven only to fill the cache.
package kafkabroker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Version is the Kafka version the embedded pom.xml resolves.
const Version = "4.4.0"

// FeaturesEnv names the default of Options.Features.
const FeaturesEnv = "PCISTREAM_KAFKA_FEATURES"

// LibsEnv overrides the directory holding the broker's jars.
const LibsEnv = "PCISTREAM_KAFKA_LIBS"

//go:embed pom.xml
var pom []byte

// ErrNoJava is returned when no java binary is on PATH (or in JAVA_HOME):
// callers that are tests skip on it.
var ErrNoJava = errors.New("kafkabroker: java not found: install a JDK 17+ (apt-get install openjdk-17-jre-headless) to run a real Kafka broker")

// Options configures Start. The zero value is a fresh broker in a temporary
// directory, fetching the classpath with Maven if it is not cached yet.
type Options struct {
	// Dir keeps the broker's logs and metadata; a directory that already
	// holds a formatted broker is started as is (a restart). Empty means a
	// temporary directory removed by Stop.
	Dir string
	// Libs is the directory of jars (default LibDir()).
	Libs string
	// NoFetch fails instead of running Maven when Libs is empty.
	NoFetch bool
	// Partitions is num.partitions for auto-created topics (default 3, as
	// the embedded kfake stack).
	Partitions int
	// HeapMB is the JVM heap (default 512).
	HeapMB int
	// Props add to or override server.properties.
	Props map[string]string
	// Port is the client port (default: a free one).
	Port int
	// Features are feature levels to format the broker with, "name=level"
	// (kafka-storage format --feature), e.g. "transaction.version=1" to
	// compare with transaction version 2, 4.x's default. Default: the
	// comma-separated list in $PCISTREAM_KAFKA_FEATURES, else the release's
	// defaults.
	Features []string
	// FullJIT runs the broker with HotSpot's optimising compiler (C2), for
	// benchmarks. The default, C1 only, starts in about half the CPU time,
	// which is what tests on a busy 2-core machine need.
	FullJIT bool
}

// Broker is a running broker process.
type Broker struct {
	// Addr is the client listener, host:port.
	Addr string

	opts    Options
	dir     string
	tempDir bool
	ctrl    int
	java    string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// LibDir returns where the broker's jars are cached: $PCISTREAM_KAFKA_LIBS,
// else <user cache dir>/pcistream/kafka-<Version>/libs ($XDG_CACHE_HOME or
// ~/.cache on Linux).
func LibDir() string {
	if d := os.Getenv(LibsEnv); d != "" {
		return d
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "pcistream", "kafka-"+Version, "libs")
}

// Java returns the java binary to run, or ErrNoJava.
func Java() (string, error) {
	if h := os.Getenv("JAVA_HOME"); h != "" {
		if p := filepath.Join(h, "bin", "java"); isExec(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath("java")
	if err != nil {
		return "", ErrNoJava
	}
	return p, nil
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Fetch fills dir with the broker's classpath using Maven, unless it already
// holds it. It writes into a sibling directory and renames it into place, so
// concurrent test packages fetching at once never see a half-filled dir.
func Fetch(ctx context.Context, dir string) error {
	if haveLibs(dir) {
		return nil
	}
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		return fmt.Errorf("kafkabroker: no Kafka classpath in %s and no mvn on PATH: install Maven (apt-get install maven) or set %s", dir, LibsEnv)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("kafkabroker: cache dir: %w", err)
	}
	work, err := os.MkdirTemp(filepath.Dir(dir), ".fetch-")
	if err != nil {
		return fmt.Errorf("kafkabroker: cache dir: %w", err)
	}
	defer os.RemoveAll(work)
	if err := os.WriteFile(filepath.Join(work, "pom.xml"), pom, 0o644); err != nil {
		return fmt.Errorf("kafkabroker: write pom: %w", err)
	}
	out := filepath.Join(work, "libs")
	cmd := exec.CommandContext(ctx, mvn, "-q", "-B", "-f", filepath.Join(work, "pom.xml"),
		"dependency:copy-dependencies", "-DincludeScope=runtime", "-DoutputDirectory="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kafkabroker: mvn dependency:copy-dependencies (needs Maven Central): %w: %s", err, tail(b, 2000))
	}
	if err := os.Rename(out, dir); err != nil && !haveLibs(dir) {
		return fmt.Errorf("kafkabroker: install classpath in %s: %w", dir, err)
	}
	return nil
}

func haveLibs(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "kafka_2.13-*.jar"))
	return len(m) > 0
}

// Start formats (unless already formatted) and starts a broker, and waits
// until it serves clients. ctx bounds the start only, not the broker's life.
func Start(ctx context.Context, o Options) (*Broker, error) {
	java, err := Java()
	if err != nil {
		return nil, err
	}
	if o.Libs == "" {
		o.Libs = LibDir()
	}
	if !haveLibs(o.Libs) {
		if o.NoFetch {
			return nil, fmt.Errorf("kafkabroker: no Kafka classpath in %s: run `go run ./internal/devstack/kafkabroker/fetch`", o.Libs)
		}
		if err := Fetch(ctx, o.Libs); err != nil {
			return nil, err
		}
	}
	if o.Partitions == 0 {
		o.Partitions = 3
	}
	if o.HeapMB == 0 {
		o.HeapMB = 512
	}
	if o.Features == nil && os.Getenv(FeaturesEnv) != "" {
		o.Features = strings.Split(os.Getenv(FeaturesEnv), ",")
	}
	b := &Broker{opts: o, java: java, dir: o.Dir}
	if b.dir == "" {
		d, err := os.MkdirTemp("", "pcistream-kafka-")
		if err != nil {
			return nil, fmt.Errorf("kafkabroker: temp dir: %w", err)
		}
		b.dir, b.tempDir = d, true
	}
	if b.dir, err = filepath.Abs(b.dir); err != nil {
		return nil, fmt.Errorf("kafkabroker: dir: %w", err)
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return nil, fmt.Errorf("kafkabroker: dir: %w", err)
	}
	port := o.Port
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	if b.ctrl, err = freePort(); err != nil {
		return nil, err
	}
	b.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := b.start(ctx); err != nil {
		b.Stop()
		return nil, err
	}
	return b, nil
}

// Dir is the broker's data directory.
func (b *Broker) Dir() string { return b.dir }

// Pid is the broker JVM's process id (0 when stopped).
func (b *Broker) Pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil || b.cmd.Process == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

func (b *Broker) start(ctx context.Context) error {
	cfgPath := filepath.Join(b.dir, "server.properties")
	if err := os.WriteFile(cfgPath, []byte(b.properties()), 0o644); err != nil {
		return fmt.Errorf("kafkabroker: write config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, "log4j2.properties"), []byte(log4j+log4jExtra()), 0o644); err != nil {
		return fmt.Errorf("kafkabroker: write log config: %w", err)
	}
	if _, err := os.Stat(filepath.Join(b.dir, "logs", "meta.properties")); err != nil {
		if err := b.format(ctx, cfgPath); err != nil {
			return err
		}
	}
	logf, err := os.OpenFile(filepath.Join(b.dir, "broker.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("kafkabroker: log file: %w", err)
	}
	args := []string{fmt.Sprintf("-Xmx%dm", b.opts.HeapMB), fmt.Sprintf("-Xms%dm", b.opts.HeapMB/2),
		"-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"}
	if !b.opts.FullJIT {
		args = append(args, "-XX:TieredStopAtLevel=1")
	}
	cmd := b.javaCmd(append(args, "kafka.Kafka", cfgPath)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("kafkabroker: start java: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	b.mu.Lock()
	b.cmd, b.done = cmd, done
	b.mu.Unlock()
	if err := b.waitReady(ctx, done); err != nil {
		return fmt.Errorf("%w (broker log %s: %s)", err, filepath.Join(b.dir, "broker.log"), b.logTail())
	}
	return nil
}

func (b *Broker) javaCmd(args ...string) *exec.Cmd {
	base := []string{"-cp", filepath.Join(b.opts.Libs, "*"), "-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=" + filepath.Join(b.dir, "log4j2.properties"),
		"-Dkafka.logs.dir=" + b.dir}
	cmd := exec.Command(b.java, append(base, args...)...)
	cmd.Dir = b.dir
	cmd.SysProcAttr = sysProcAttr()
	return cmd
}

// format prepares the log directory. Formatting costs a JVM start, so the
// first format is kept as a template beside the classpath and copied for
// later brokers: meta.properties and the bootstrap checkpoint hold the
// cluster and node ids but no path or port, and every broker is a cluster
// of its own.
func (b *Broker) format(ctx context.Context, cfgPath string) error {
	logs := filepath.Join(b.dir, "logs")
	if len(b.opts.Features) > 0 {
		return b.storageFormat(ctx, cfgPath) // the template has the default features
	}
	tmpl := filepath.Join(filepath.Dir(b.opts.Libs), "formatted-logdir")
	if _, err := os.Stat(filepath.Join(tmpl, "meta.properties")); err == nil {
		if err := copyDir(tmpl, logs); err == nil {
			return nil
		}
		_ = os.RemoveAll(logs)
	}
	if err := b.storageFormat(ctx, cfgPath); err != nil {
		return err
	}
	if work, err := os.MkdirTemp(filepath.Dir(tmpl), ".tmpl-"); err == nil {
		if copyDir(logs, filepath.Join(work, "d")) != nil || os.Rename(filepath.Join(work, "d"), tmpl) != nil {
			_ = os.RemoveAll(work) // another process won the race, or no cache: fine
		} else {
			_ = os.Remove(work)
		}
	}
	return nil
}

func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

func (b *Broker) storageFormat(ctx context.Context, cfgPath string) error {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return fmt.Errorf("kafkabroker: cluster id: %w", err)
	}
	args := []string{"-Xmx256m", "-XX:TieredStopAtLevel=1", "kafka.tools.StorageTool", "format",
		"-t", base64.RawURLEncoding.EncodeToString(id), "-c", cfgPath}
	for _, f := range b.opts.Features {
		args = append(args, "--feature", strings.TrimSpace(f))
	}
	cmd := b.javaCmd(args...)
	out, err := runCtx(ctx, cmd)
	if err != nil {
		return fmt.Errorf("kafkabroker: format %s: %w: %s", b.dir, err, tail(out, 2000))
	}
	return nil
}

func runCtx(ctx context.Context, cmd *exec.Cmd) ([]byte, error) {
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case err := <-errc:
		return buf.Bytes(), err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-errc
		return buf.Bytes(), ctx.Err()
	}
}

// properties is server.properties: one combined node, every internal topic
// at replication factor 1, and small partition counts and segments so the
// broker starts fast and stays small.
func (b *Broker) properties() string {
	port := b.Addr[strings.LastIndexByte(b.Addr, ':')+1:]
	p := map[string]string{
		"process.roles":                                    "broker,controller",
		"node.id":                                          "1",
		"controller.quorum.voters":                         fmt.Sprintf("1@127.0.0.1:%d", b.ctrl),
		"listeners":                                        fmt.Sprintf("PLAINTEXT://127.0.0.1:%s,CONTROLLER://127.0.0.1:%d", port, b.ctrl),
		"advertised.listeners":                             "PLAINTEXT://127.0.0.1:" + port,
		"controller.listener.names":                        "CONTROLLER",
		"inter.broker.listener.name":                       "PLAINTEXT",
		"listener.security.protocol.map":                   "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"log.dirs":                                         filepath.Join(b.dir, "logs"),
		"num.partitions":                                   strconv.Itoa(b.opts.Partitions),
		"default.replication.factor":                       "1",
		"min.insync.replicas":                              "1",
		"auto.create.topics.enable":                        "true",
		"offsets.topic.replication.factor":                 "1",
		"offsets.topic.num.partitions":                     "5",
		"transaction.state.log.replication.factor":         "1",
		"transaction.state.log.min.isr":                    "1",
		"transaction.state.log.num.partitions":             "5",
		"share.coordinator.state.topic.replication.factor": "1",
		"share.coordinator.state.topic.min.isr":            "1",
		"group.initial.rebalance.delay.ms":                 "0",
		"log.segment.bytes":                                strconv.Itoa(16 << 20),
		"num.network.threads":                              "2",
		"num.io.threads":                                   "4",
		"num.recovery.threads.per.data.dir":                "1",
		"log.cleaner.dedupe.buffer.size":                   strconv.Itoa(8 << 20),
	}
	for k, v := range b.opts.Props {
		p[k] = v
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "%s=%s\n", k, p[k])
	}
	return sb.String()
}

// Log4jEnv names an environment variable of extra log4j2 properties lines,
// separated by ';', for investigations: e.g.
// "logger.tm.name=kafka.coordinator.transaction;logger.tm.level=debug" logs
// the transaction coordinator's marker writes and their errors.
const Log4jEnv = "PCISTREAM_KAFKA_LOG4J"

func log4jExtra() string {
	extra := strings.TrimSpace(os.Getenv(Log4jEnv))
	if extra == "" {
		return ""
	}
	return strings.ReplaceAll(extra, ";", "\n") + "\n"
}

// log4j keeps the broker's own log to warnings, in broker.log.
const log4j = `status = error
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
`

// waitReady polls until the broker answers metadata and can find a group
// and a transaction coordinator (which creates __consumer_offsets and
// __transaction_state, so the first test does not pay for it).
func (b *Broker) waitReady(ctx context.Context, done <-chan struct{}) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.RetryTimeout(2*time.Second))
	if err != nil {
		return fmt.Errorf("kafkabroker: client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var last error
	for {
		select {
		case <-done:
			return fmt.Errorf("kafkabroker: broker exited during start")
		case <-ctx.Done():
			return fmt.Errorf("kafkabroker: broker on %s not ready: %w (last: %v): on a busy machine give Start a longer context", b.Addr, ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
		last = probe(ctx, adm)
		if last == nil {
			return nil
		}
	}
}

func probe(ctx context.Context, adm *kadm.Client) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := adm.BrokerMetadata(pctx); err != nil {
		return err
	}
	if err := adm.FindGroupCoordinators(pctx, "pcistream-kafkabroker-probe").Error(); err != nil {
		return fmt.Errorf("group coordinator: %w", err)
	}
	if err := adm.FindTxnCoordinators(pctx, "pcistream-kafkabroker-probe").Error(); err != nil {
		return fmt.Errorf("transaction coordinator: %w", err)
	}
	return nil
}

// Kill sends SIGKILL, as a crashed broker, and keeps the data directory so
// Restart can bring the same broker back.
func (b *Broker) Kill() {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Restart starts a killed or stopped broker again on the same directory and
// ports.
func (b *Broker) Restart(ctx context.Context) error {
	b.Kill()
	return b.start(ctx)
}

// Stop shuts the broker down (SIGTERM, then SIGKILL after 15 s) and removes
// a temporary data directory.
func (b *Broker) Stop() error {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
	}
	if b.tempDir {
		return os.RemoveAll(b.dir)
	}
	return nil
}

func (b *Broker) logTail() string {
	f, err := os.Open(filepath.Join(b.dir, "broker.log"))
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 8 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, " | ")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("kafkabroker: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
