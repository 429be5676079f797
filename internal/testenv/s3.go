package testenv

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/versitygw"
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
	proc *versitygw.Process
}

// StartS3 starts a versitygw for the test; it is stopped in the test's cleanup.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	return StartS3On(t, "127.0.0.1")
}

// StartS3On is StartS3 on another of the machine's addresses, where
// something that is not on loopback (a swarm node) reaches it.
func StartS3On(t testing.TB, host string) *S3Server {
	t.Helper()
	bin, err := versitygw.Binary()
	if err != nil {
		Unavailable(t, "versitygw binary (set HOMEROOM_VERSITYGW, or install it at /var/cache/homeroom/versitygw-"+versitygw.Version+"/versitygw or on PATH)")
	}
	s := &S3Server{t: t, bin: bin, addr: FreeAddrOn(t, host), dir: t.TempDir(),
		accessKey: "test-" + rand.Text()[:12], secretKey: rand.Text()}
	// The posix backend keeps object metadata in extended attributes; where
	// the temporary directory cannot hold them, use its sidecar directory.
	if !versitygw.DirHasXattrs(s.dir) {
		s.sidecar = t.TempDir()
	}
	t.Cleanup(s.Stop)
	s.Start()
	return s
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
	if s.proc != nil {
		return
	}
	proc, err := versitygw.Start(context.Background(), versitygw.Options{
		Binary: s.bin, Addr: s.addr, Dir: s.dir, Sidecar: s.sidecar,
		AccessKey: s.accessKey, SecretKey: s.secretKey, StartTimeout: s3StartTimeout,
	})
	if err != nil {
		s.t.Fatal(err)
	}
	s.proc = proc
}

// Stop stops the server, politely first, and waits until it has exited.
// Stopping a stopped server does nothing.
func (s *S3Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.Stop(s3StopTimeout)
	if s.t.Failed() {
		s.t.Logf("versitygw output:\n%s", s.proc.Output())
	}
	s.proc = nil
}

// Output is what the server printed since it was last started (its end).
func (s *S3Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return ""
	}
	return s.proc.Output()
}
