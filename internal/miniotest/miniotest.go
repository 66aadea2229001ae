// Package miniotest starts a MinIO server for tests, as a second S3
// implementation beside the embedded gateway. MinIO is not a Go dependency:
// the binary is found on PATH or in $GOPATH/bin (`go install
// github.com/minio/minio@latest`; .ci/run builds it once), and tests skip
// the MinIO variant with a one-line reason when it is absent.
package miniotest

import (
	gobuild "go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pcistream/pcistream/internal/config"
)

// Binary returns the path of a MinIO server binary, "" when there is none.
func Binary() string {
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		gopath = gobuild.Default.GOPATH
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "minio")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Start runs a single-drive MinIO server on free loopback ports for the
// rest of the test and returns its S3 configuration, or a one-line reason
// why it cannot (the caller skips). The server is killed at cleanup.
func Start(t testing.TB) (config.S3, string) {
	t.Helper()
	if testing.Short() {
		return config.S3{}, "-short"
	}
	bin := Binary()
	if bin == "" {
		return config.S3{}, "no minio binary on PATH or in $GOPATH/bin (go install github.com/minio/minio@latest)"
	}
	addr, console := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "server", t.TempDir(), "--address", addr, "--console-address", console, "--quiet")
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER=pcistream", "MINIO_ROOT_PASSWORD=pcistream-secret", "MINIO_BROWSER=off")
	if err := cmd.Start(); err != nil {
		return config.S3{}, "minio does not start: " + err.Error()
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	url := "http://" + addr
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(url + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("minio at %s not live after 90s: %v", addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return config.S3{Endpoint: url, Region: "us-east-1", AccessKey: "pcistream", SecretKey: "pcistream-secret", PathStyle: true}, ""
}
