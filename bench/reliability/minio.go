package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/miniotest"
	"github.com/pcistream/pcistream/internal/s3x"
)

// minioProc is a MinIO server as a child process on a fixed data dir and
// port, so the auditor scenarios can hang it (SIGSTOP/SIGCONT) and crash it
// (SIGKILL, restart on the same data dir). MinIO is not a Go dependency:
// miniotest.Binary finds it on PATH or in $GOPATH/bin.
type minioProc struct {
	bin, dir, logDir string
	port, console    int
	cmd              *exec.Cmd
	done             chan struct{}
	starts           int
}

const minioUser, minioSecret = "pcistream", "pcistream-secret"

func newMinio(dir string) (*minioProc, error) {
	bin := miniotest.Binary()
	if bin == "" {
		return nil, errNoMinio
	}
	m := &minioProc{bin: bin, dir: filepath.Join(dir, "minio"), logDir: dir}
	var err error
	if m.port, err = freePort(); err != nil {
		return nil, err
	}
	if m.console, err = freePort(); err != nil {
		return nil, err
	}
	return m, os.MkdirAll(m.dir, 0o755)
}

// errNoMinio is why the auditor scenarios do not run.
var errNoMinio = fmt.Errorf("no minio binary on PATH or in $GOPATH/bin (go install github.com/minio/minio@latest; .ci/run builds it)")

func (m *minioProc) endpoint() string { return "http://" + addr(m.port) }

func (m *minioProc) s3(bucket string) config.S3 {
	return config.S3{Endpoint: m.endpoint(), Region: "us-east-1", AccessKey: minioUser, SecretKey: minioSecret, PathStyle: true, Bucket: bucket}
}

// start runs the server and waits until it is live.
func (m *minioProc) start(ctx context.Context) error {
	m.starts++
	logf, err := os.Create(filepath.Join(m.logDir, fmt.Sprintf("minio-%d.log", m.starts)))
	if err != nil {
		return err
	}
	m.cmd = exec.Command(m.bin, "server", m.dir, "--address", addr(m.port), "--console-address", addr(m.console), "--quiet")
	m.cmd.Env = append(cleanEnv(), "MINIO_ROOT_USER="+minioUser, "MINIO_ROOT_PASSWORD="+minioSecret, "MINIO_BROWSER=off")
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("minio: %w", err)
	}
	m.done = make(chan struct{})
	cmd, done := m.cmd, m.done
	go func() { cmd.Wait(); logf.Close(); close(done) }() //nolint:errcheck
	deadline := time.Now().Add(2 * time.Minute)
	for ctx.Err() == nil {
		cl := http.Client{Timeout: 2 * time.Second}
		if resp, err := cl.Get(m.endpoint() + "/minio/health/live"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("minio exited during start (see %s)", logf.Name())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("minio not live within 2m (see %s)", logf.Name())
		}
	}
	return ctx.Err()
}

// signal sends sig to the server (SIGSTOP and SIGCONT hang and resume it).
func (m *minioProc) signal(sig syscall.Signal) {
	if m.cmd != nil {
		m.cmd.Process.Signal(sig) //nolint:errcheck
	}
}

// kill SIGKILLs the server and waits for it; its data dir stays.
func (m *minioProc) kill() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGCONT) //nolint:errcheck // a stopped process dies on SIGKILL too; be explicit
	m.cmd.Process.Kill()                  //nolint:errcheck
	<-m.done
	m.cmd = nil
}

// createLockedBucket creates bucket with Object Lock enabled.
func createLockedBucket(ctx context.Context, c config.S3) error {
	cl, err := s3x.NewClient(ctx, c)
	if err != nil {
		return err
	}
	_, err = cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(c.Bucket), ObjectLockEnabledForBucket: aws.Bool(true)})
	if err != nil {
		return fmt.Errorf("create bucket %s on MinIO: %w", c.Bucket, err)
	}
	return nil
}
