// Package devstack runs pcistream's embedded development stack in process:
// a Kafka broker speaking the real wire protocol (kfake, transactions on), a
// Confluent-compatible schema registry (srfake) that really enforces Avro
// compatibility, and an S3 gateway with Object Lock and versioning (versitygw
// embedgw, posix backend).
//
// It backs `pcistream dev`, `pcistream demo` and the integration tests
// (through devstacktest). Processors never import it: they only see
// addresses in a config.Config.
//
// The Kafka side is replaceable: ExternalKafka starts the stack without
// kfake and points KafkaAddrs (and Config) at another cluster, such as a real
// Apache Kafka broker; Cluster is then nil.
//
// A kfake broker restarted on a data dir a crash left behind is repaired
// before it serves its coordinators (crashrepair.go): transactions left
// open get abort markers, and a commit cut between its markers and its
// group offsets gets its offsets from the dev stack's journal of
// committing transactions (txnjournal.go), as Kafka's coordinator completes
// a PREPARE_COMMIT.
//
// Two properties of versitygw shape this package: only one gateway can run
// per process, and its posix backend changes the process working directory
// to the S3 root. Resolve relative paths before calling Start.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"github.com/versity/versitygw/auth"
	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/debuglogger"
	"github.com/versity/versitygw/embedgw"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/devstack/kafkabroker"
	"github.com/pcistream/pcistream/internal/s3x"
)

// Stack is a running embedded stack.
type Stack struct {
	// KafkaAddrs are the broker addresses (host:port): kfake's, or the
	// seeds given to ExternalKafka. Clients need nothing else.
	KafkaAddrs []string
	// RegistryURL is the schema registry base URL.
	RegistryURL string
	// S3 describes the S3 gateway and the audit bucket created on it; its
	// Endpoint is empty when the stack runs without S3.
	S3 config.S3
	// DataDir holds the Kafka log, the registry's schemas and the S3 data.
	DataDir string
	// Cluster is the kfake cluster, for fault injection in tests; nil with
	// ExternalKafka or RealKafka.
	Cluster *kfake.Cluster
	// Broker is the real Apache Kafka broker when the stack was started
	// with RealKafka (kill and restart it to inject faults); else nil.
	Broker *kafkabroker.Broker
	// Registry is the fake registry, for inspection in tests.
	Registry *srfake.Registry

	cfg      cfg
	cancel   context.CancelFunc
	regSrv   *http.Server
	s3Done   chan error
	tempDir  bool
	closeMu  sync.Mutex
	closed   bool
	registry *compatRegistry
	journal  *txnJournal
}

type cfg struct {
	kafkaAddr    string
	registryAddr string
	s3Addr       string
	dataDir      string
	withS3       bool
	bucket       string
	partitions   int32
	kfakeOpts    []kfake.Opt
	realKafka    bool
	brokerOpts   kafkabroker.Options
	external     []string
	logger       io.Writer
}

// Opt configures Start.
type Opt func(*cfg)

// KafkaAddr sets the broker listen address (default 127.0.0.1:0, a random
// port; `pcistream dev` uses 127.0.0.1:9092).
func KafkaAddr(addr string) Opt { return func(c *cfg) { c.kafkaAddr = addr } }

// RegistryAddr sets the schema registry listen address (default random).
func RegistryAddr(addr string) Opt { return func(c *cfg) { c.registryAddr = addr } }

// S3Addr sets the S3 gateway listen address (default random).
func S3Addr(addr string) Opt { return func(c *cfg) { c.s3Addr = addr } }

// DataDir keeps the stack's state in dir, so a stack restarted on the same
// directory finds its topics, offsets, schemas and objects again. Without
// it the stack uses a temporary directory removed by Close.
func DataDir(dir string) Opt { return func(c *cfg) { c.dataDir = dir } }

// WithoutS3 skips the S3 gateway (useful for Kafka-only tests, and for a
// second stack in a process, since versitygw allows one gateway a process).
func WithoutS3() Opt { return func(c *cfg) { c.withS3 = false } }

// Bucket names the audit bucket created with Object Lock (default
// pcistream-audit).
func Bucket(name string) Opt { return func(c *cfg) { c.bucket = name } }

// DefaultPartitions sets kfake's partition count for auto-created topics.
func DefaultPartitions(n int32) Opt { return func(c *cfg) { c.partitions = n } }

// KfakeOpts passes extra options to the Kafka cluster (fault injection,
// SASL, TLS...).
func KfakeOpts(opts ...kfake.Opt) Opt {
	return func(c *cfg) { c.kfakeOpts = append(c.kfakeOpts, opts...) }
}

// RealKafka runs a real single-node Apache Kafka broker (a JVM, see package
// kafkabroker) instead of kfake. It needs Java 17+ and, once, Maven to
// fetch the broker's classpath; KfakeOpts are ignored.
func RealKafka() Opt { return func(c *cfg) { c.realKafka = true } }

// RealKafkaWith is RealKafka with broker options (FullJIT for benchmarks,
// extra server properties...); Dir, Partitions and Port default to the
// stack's.
func RealKafkaWith(o kafkabroker.Options) Opt {
	return func(c *cfg) { c.realKafka, c.brokerOpts = true, o }
}

// ExternalKafka uses the Kafka cluster at seeds instead of starting kfake
// (KafkaAddr, DefaultPartitions and KfakeOpts are then ignored).
func ExternalKafka(seeds ...string) Opt {
	return func(c *cfg) { c.external = append([]string(nil), seeds...) }
}

// GatewayLog sends the S3 gateway's own log output to w (default discarded).
func GatewayLog(w io.Writer) Opt { return func(c *cfg) { c.logger = w } }

// Start starts the stack and returns once every service accepts requests.
func Start(ctx context.Context, opts ...Opt) (*Stack, error) {
	c := cfg{
		kafkaAddr:    "127.0.0.1:0",
		registryAddr: "127.0.0.1:0",
		s3Addr:       "127.0.0.1:0",
		withS3:       true,
		bucket:       config.DefaultS3Bucket,
		partitions:   3,
		logger:       io.Discard,
	}
	for _, o := range opts {
		o(&c)
	}
	s := &Stack{cfg: c}
	if c.dataDir == "" {
		d, err := os.MkdirTemp("", "pcistream-dev-")
		if err != nil {
			return nil, fmt.Errorf("devstack: temp dir: %w", err)
		}
		c.dataDir = d
		s.tempDir = true
	}
	abs, err := filepath.Abs(c.dataDir)
	if err != nil {
		return nil, fmt.Errorf("devstack: data dir: %w", err)
	}
	s.DataDir = abs
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel

	if err := s.startKafka(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.startRegistry(); err != nil {
		s.Close()
		return nil, err
	}
	if c.withS3 {
		if err := s.startS3(ctx, runCtx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Stack) startKafka(ctx context.Context) error {
	if len(s.cfg.external) > 0 {
		s.KafkaAddrs = s.cfg.external
		return nil
	}
	host, port, err := splitAddr(s.cfg.kafkaAddr)
	if err != nil {
		return fmt.Errorf("devstack: kafka address: %w", err)
	}
	if s.cfg.realKafka {
		o := s.cfg.brokerOpts
		if o.Dir == "" {
			o.Dir = filepath.Join(s.DataDir, "kafka-real")
		}
		if o.Partitions == 0 {
			o.Partitions = int(s.cfg.partitions)
		}
		if o.Port == 0 {
			o.Port = port
		}
		b, err := kafkabroker.Start(ctx, o)
		if err != nil {
			return fmt.Errorf("devstack: start Apache Kafka: %w", err)
		}
		s.Broker = b
		s.KafkaAddrs = []string{b.Addr}
		return nil
	}
	kdir := filepath.Join(s.DataDir, "kafka")
	entries, _ := os.ReadDir(kdir)
	restarted := len(entries) > 0
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.DefaultNumPartitions(int(s.cfg.partitions)),
		kfake.DataDir(kdir),
		kfake.ClusterID("pcistream-dev"),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
	}
	opts = append(opts, s.cfg.kfakeOpts...)
	cl, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("devstack: start Kafka on %s: %w", s.cfg.kafkaAddr, err)
	}
	s.Cluster = cl
	s.KafkaAddrs = cl.ListenAddrs()
	j, err := openTxnJournal(filepath.Join(s.DataDir, "kafka-txn", "prepared.log"))
	if err != nil {
		return err
	}
	s.journal = j
	if restarted {
		aborted, rolled, err := s.repairCrash(context.Background(), cl, j)
		if err != nil {
			return err
		}
		if aborted > 0 {
			fmt.Fprintf(s.cfg.logger, "devstack: wrote abort markers for %d transactions a crash left open\n", aborted)
		}
		if rolled > 0 {
			fmt.Fprintf(s.cfg.logger, "devstack: completed the group offsets of %d transactions a crash interrupted after their commit markers\n", rolled)
		}
	} else if err := j.reset(); err != nil {
		return err
	}
	// After the repair, so a record is never written for an EndTxn the
	// repair's gate refuses.
	j.install(cl)
	return nil
}

func (s *Stack) startRegistry() error {
	reg, err := newCompatRegistry(filepath.Join(s.DataDir, "registry", "schemas.json"))
	if err != nil {
		return fmt.Errorf("devstack: schema registry: %w", err)
	}
	s.registry = reg
	s.Registry = reg.fake
	ln, err := net.Listen("tcp", s.cfg.registryAddr)
	if err != nil {
		return fmt.Errorf("devstack: schema registry listen on %s: %w (is another pcistream dev running?)", s.cfg.registryAddr, err)
	}
	s.regSrv = &http.Server{Handler: reg, ReadHeaderTimeout: 10 * time.Second}
	go s.regSrv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed on Close
	s.RegistryURL = "http://" + ln.Addr().String()
	return nil
}

func (s *Stack) startS3(ctx, runCtx context.Context) error {
	addr := s.cfg.s3Addr
	host, port, err := splitAddr(addr)
	if err != nil {
		return fmt.Errorf("devstack: S3 address: %w", err)
	}
	if port == 0 {
		// embedgw takes an address, not a listener: find a free port.
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return fmt.Errorf("devstack: S3 port: %w", err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	addr = net.JoinHostPort(host, strconv.Itoa(port))
	root := filepath.Join(s.DataDir, "s3", "root")
	versions := filepath.Join(s.DataDir, "s3", "versions")
	for _, d := range []string{root, versions} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("devstack: S3 dirs: %w", err)
		}
	}
	if err := checkXattr(root); err != nil {
		return err
	}
	// posix.New chdirs into root and prints to stdout; keep stdout clean.
	be, err := quietly(func() (*posix.Posix, error) {
		return posix.New(root, meta.XattrMeta{}, posix.PosixOpts{VersioningDir: versions})
	})
	if err != nil {
		return fmt.Errorf("devstack: S3 posix backend: %w", err)
	}
	gcfg := &embedgw.Config{
		RootUserAccess:      config.DefaultS3AccessKey,
		RootUserSecret:      config.DefaultS3SecretKey,
		Region:              config.DefaultS3Region,
		Ports:               []string{addr},
		MaxConnections:      256,
		MaxRequests:         256,
		AdminMaxConnections: 16,
		AdminMaxRequests:    16,
		MultipartMaxParts:   10000,
		Quiet:               true,
		LogLevel:            debuglogger.LevelSilent,
		// Supplying the single-account IAM ourselves keeps the gateway
		// from printing its "no IAM configured" banner on stdout.
		IAMService: auth.NewIAMServiceSingle(auth.Account{
			Access: config.DefaultS3AccessKey,
			Secret: config.DefaultS3SecretKey,
			Role:   auth.RoleAdmin,
		}),
	}
	log.SetOutput(s.cfg.logger)
	s.s3Done = make(chan error, 1)
	go func() { s.s3Done <- embedgw.RunVersityGW(runCtx, be, gcfg) }()

	s.S3 = config.S3{
		Endpoint:  "http://" + addr,
		Region:    config.DefaultS3Region,
		Bucket:    s.cfg.bucket,
		AccessKey: config.DefaultS3AccessKey,
		SecretKey: config.DefaultS3SecretKey,
		PathStyle: true,
	}
	if err := waitTCP(ctx, addr, s.s3Done); err != nil {
		return err
	}
	return s.ensureBucket(ctx)
}

// ensureBucket creates the audit bucket with Object Lock (which implies
// versioning) unless it exists.
func (s *Stack) ensureBucket(ctx context.Context) error {
	cl, err := s3x.NewClient(ctx, s.S3)
	if err != nil {
		return err
	}
	_, err = cl.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.S3.Bucket)})
	if err == nil {
		return nil
	}
	_, err = cl.CreateBucket(ctx, &s3.CreateBucketInput{
		Bucket:                     aws.String(s.S3.Bucket),
		ObjectLockEnabledForBucket: aws.Bool(true),
	})
	if err != nil {
		var owned *s3types.BucketAlreadyOwnedByYou
		if errors.As(err, &owned) {
			return nil
		}
		return fmt.Errorf("devstack: create bucket %s: %w", s.S3.Bucket, err)
	}
	return nil
}

// Config returns a configuration pointing at this stack, with default
// topic names. Topology and schemas are not applied: call Setup.
func (s *Stack) Config() config.Config {
	c := config.Default()
	c.Kafka.Brokers = append([]string(nil), s.KafkaAddrs...)
	c.Registry.URL = s.RegistryURL
	if s.S3.Endpoint != "" {
		c.S3 = s.S3
	} else {
		c.S3 = config.S3{}
	}
	c.MetricsAddr = ""
	return c
}

// Close stops every service and, for a temporary data directory, removes it.
func (s *Stack) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.regSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.regSrv.Shutdown(ctx)
		cancel()
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.s3Done != nil {
		select {
		case <-s.s3Done:
		case <-time.After(10 * time.Second):
		}
	}
	if s.Cluster != nil {
		s.Cluster.Close()
	}
	if s.journal != nil {
		s.journal.close()
	}
	if s.Broker != nil {
		_ = s.Broker.Stop()
	}
	if s.tempDir {
		return os.RemoveAll(s.DataDir)
	}
	return nil
}

func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, port, nil
}

func waitTCP(ctx context.Context, addr string, done <-chan error) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-done:
			return fmt.Errorf("devstack: S3 gateway on %s stopped: %w", addr, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("devstack: S3 gateway on %s did not start: %w", addr, err)
		}
	}
}

// checkXattr fails early with a useful message when the filesystem lacks
// user extended attributes, which versitygw's posix backend stores metadata in.
func checkXattr(dir string) error {
	f := filepath.Join(dir, ".xattr-probe")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		return fmt.Errorf("devstack: S3 data dir: %w", err)
	}
	defer os.Remove(f)
	if err := setXattr(f, "user.pcistream.probe", []byte("1")); err != nil {
		return fmt.Errorf("devstack: the S3 data dir %s needs user extended attributes (%v): use --data-dir on ext4, xfs or tmpfs", dir, err)
	}
	return nil
}

// quietly runs fn with os.Stdout pointed at /dev/null: versitygw prints
// banners that would corrupt a command's machine-readable output.
func quietly[T any](fn func() (T, error)) (T, error) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return fn()
	}
	defer null.Close()
	old := os.Stdout
	os.Stdout = null
	defer func() { os.Stdout = old }()
	return fn()
}
