package testenv

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/homeroom/homeroom/pkg/artifacts"
)

const (
	s3Bucket = "homeroom-artifacts"

	s3StartTimeout = 20 * time.Second
	s3StopTimeout  = 10 * time.Second
)

// S3 starts a versitygw serving an empty temporary directory for the test
// and returns a configuration for it. The server stops when the test ends.
func S3(t testing.TB) artifacts.Config {
	t.Helper()
	return StartS3(t).Config()
}

// S3Server is a versitygw process that a test can stop and start again on
// the same address and directory, to see what a collection does when the
// object store goes away.
type S3Server struct {
	t       testing.TB
	bin     string
	addr    string
	dir     string
	sidecar string // metadata directory when dir has no xattrs
	// Keys are unique per server, so that an answer to a signed request
	// proves that this server, not another test's on a reused port, serves.
	accessKey, secretKey string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// StartS3 starts a versitygw for the test; it is stopped in the test's cleanup.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	bin := versitygwBinary()
	if bin == "" {
		Unavailable(t, "versitygw binary (set HOMEROOM_VERSITYGW, or install it at /var/cache/homeroom/bin/versitygw or on PATH)")
	}
	s := &S3Server{t: t, bin: bin, addr: FreeAddr(t), dir: t.TempDir(),
		accessKey: "test-" + rand.Text()[:12], secretKey: rand.Text()}
	// The posix backend keeps object metadata in extended attributes; where
	// the temporary directory cannot hold them, use its sidecar directory.
	if !s3DirHasXattrs(s.dir) {
		s.sidecar = t.TempDir()
	}
	t.Cleanup(s.Stop)
	s.Start()
	return s
}

func versitygwBinary() string {
	if p := os.Getenv("HOMEROOM_VERSITYGW"); p != "" {
		return p
	}
	// Where scripts/ensure-versitygw.sh caches its build.
	cache := os.Getenv("HOMEROOM_CACHE")
	if cache == "" {
		cache = "/var/cache/homeroom"
	}
	cached := filepath.Join(cache, "versitygw-v1.8.0", "versitygw")
	if fi, err := os.Stat(cached); err == nil && !fi.IsDir() {
		return cached
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	return ""
}

// Config is a client configuration for the server.
func (s *S3Server) Config() artifacts.Config {
	return artifacts.Config{
		Endpoint:  s.addr,
		AccessKey: s.accessKey,
		SecretKey: s.secretKey,
		Bucket:    s3Bucket,
	}
}

// Addr is the server's host:port; it does not change across restarts.
func (s *S3Server) Addr() string { return s.addr }

// Dir is the directory the server stores buckets in.
func (s *S3Server) Dir() string { return s.dir }

// Start starts the server if it is not running and waits until it answers.
func (s *S3Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	// --quiet: no line per request in the output kept for failure reports.
	args := []string{"--port", s.addr, "--quiet", "posix"}
	if s.sidecar != "" {
		args = append(args, "--sidecar", s.sidecar)
	}
	args = append(args, s.dir)
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.accessKey, "ROOT_SECRET_KEY="+s.secretKey)
	out := &syncBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = s3ProcAttr()
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start versitygw: %v", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	if err := s.waitReady(done); err != nil {
		cmd.Process.Kill()
		<-done
		s.t.Fatalf("versitygw %v did not come up: %v\n%s", args, err, out.String())
	}
	s.cmd, s.out, s.done = cmd, out, done
}

// Stop stops the server, politely first, and waits until it has exited.
// Stopping a stopped server does nothing.
func (s *S3Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(s3StopTimeout):
		s.t.Logf("versitygw did not exit %s after SIGTERM; killing it", s3StopTimeout)
		s.cmd.Process.Kill()
		<-s.done
	}
	if s.t.Failed() {
		s.t.Logf("versitygw output:\n%s", s.out.String())
	}
	s.cmd = nil
}

// waitReady waits until the server answers a request signed with its keys.
func (s *S3Server) waitReady(exited <-chan struct{}) error {
	client, err := minio.New(s.addr, &minio.Options{
		Creds:      credentials.NewStaticV4(s.accessKey, s.secretKey, ""),
		MaxRetries: 1,
	})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(s3StartTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("process exited")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := client.BucketExists(ctx, s3Bucket)
		cancel()
		if err == nil {
			return nil
		}
		if code := minio.ToErrorResponse(err).Code; code != "" {
			return fmt.Errorf("another server answers on %s: %w", s.addr, err)
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	return errors.Join(errors.New("timed out"), lastErr)
}

// Output is what the server printed since it was last started.
func (s *S3Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}
