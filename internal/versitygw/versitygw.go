// Package versitygw runs versitygw, the S3 server Homeroom embeds and tests
// against, as a child process serving a directory with its posix backend:
// finding the binary, starting it on an address with a pair of keys, waiting
// until it answers a request signed with them, and stopping it.
//
// The apiserver's embedded artifact store (Embedded, supervised here) and
// the tests' S3 servers (internal/testenv) both start it here. The
// controller only reads the keys, through pkg/artifacts, and does not link
// this package.
package versitygw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Version is the versitygw release scripts/ensure-versitygw.sh builds.
const Version = "v1.8.0"

// EnvBinary names the variable that points at the versitygw binary.
const EnvBinary = "HOMEROOM_VERSITYGW"

// ErrNotFound is returned by Binary when no versitygw binary is found.
var ErrNotFound = errors.New("versitygw binary not found: build it with scripts/ensure-versitygw.sh " +
	"and set " + EnvBinary + " to the path it prints (or put versitygw next to the apiserver or on PATH)")

// Binary finds the versitygw binary: $HOMEROOM_VERSITYGW if set (which must
// exist), else versitygw next to the running executable, else where
// scripts/ensure-versitygw.sh caches its build ($HOMEROOM_CACHE, default
// /var/cache/homeroom), else on PATH.
func Binary() (string, error) {
	return BinaryAt(os.Getenv(EnvBinary))
}

// BinaryAt is Binary with path in place of $HOMEROOM_VERSITYGW: the
// apiserver's -versitygw, which that variable also sets.
func BinaryAt(path string) (string, error) {
	if path != "" {
		if isFile(path) {
			return path, nil
		}
		return "", fmt.Errorf("versitygw binary %s (%s, -versitygw) does not exist: build it with scripts/ensure-versitygw.sh", path, EnvBinary)
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "versitygw"); isFile(p) {
			return p, nil
		}
	}
	cache := os.Getenv("HOMEROOM_CACHE")
	if cache == "" {
		cache = "/var/cache/homeroom"
	}
	if p := filepath.Join(cache, "versitygw-"+Version, "versitygw"); isFile(p) {
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	return "", ErrNotFound
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// Options say what a versitygw serves, where and to whom.
type Options struct {
	Binary string // from Binary
	Addr   string // host:port to listen on
	// Dir is the posix backend's root: each directory in it is a bucket.
	Dir string
	// Sidecar keeps object metadata when Dir's filesystem has no extended
	// attributes (see DirHasXattrs); empty: in extended attributes.
	Sidecar string
	// The root account's keys, the only ones the server accepts. They are
	// passed in the environment, not on the command line.
	AccessKey, SecretKey string
	// Private makes new directories 0700 and new files 0600.
	Private bool
	// Output receives what the server prints; nil discards it.
	Output io.Writer
	// StartTimeout bounds the wait for the server to answer; 0: 20 s.
	StartTimeout time.Duration
}

// Process is a running versitygw.
type Process struct {
	opts Options
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the exit status, set before done closes
	tail *tailBuffer

	stopOnce sync.Once
}

// Start starts versitygw and waits until it answers a request signed with
// the keys, or fails. The server's environment holds only its keys, and on
// Linux the kernel kills it if the process that started it dies.
func Start(ctx context.Context, opts Options) (*Process, error) {
	if opts.Binary == "" || opts.Addr == "" || opts.Dir == "" || opts.AccessKey == "" || opts.SecretKey == "" {
		return nil, errors.New("versitygw: binary, address, directory and keys are required")
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 20 * time.Second
	}
	// --quiet: no line per request.
	args := []string{"--port", opts.Addr, "--quiet", "posix"}
	if opts.Private {
		args = append(args, "--dir-perms", "0700", "--file-perms", "0600")
	}
	if opts.Sidecar != "" {
		args = append(args, "--sidecar", opts.Sidecar)
	}
	args = append(args, opts.Dir)
	cmd := exec.Command(opts.Binary, args...)
	cmd.Dir = opts.Dir
	cmd.Env = []string{"ROOT_ACCESS_KEY=" + opts.AccessKey, "ROOT_SECRET_KEY=" + opts.SecretKey}
	p := &Process{opts: opts, cmd: cmd, done: make(chan struct{}), tail: &tailBuffer{max: 8 << 10}}
	var out io.Writer = p.tail
	if opts.Output != nil {
		out = io.MultiWriter(p.tail, opts.Output)
	}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("versitygw: start %s: %w", opts.Binary, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := p.waitReady(ctx); err != nil {
		p.Kill()
		return nil, fmt.Errorf("versitygw on %s did not come up: %w\n%s", opts.Addr, err, p.Output())
	}
	return p, nil
}

// waitReady waits until the server answers a request signed with its keys:
// an answer with an S3 error (e.g. InvalidAccessKeyId) is another server's.
func (p *Process) waitReady(ctx context.Context) error {
	client, err := minio.New(p.opts.Addr, &minio.Options{
		Creds:      credentials.NewStaticV4(p.opts.AccessKey, p.opts.SecretKey, ""),
		MaxRetries: 1,
	})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(p.opts.StartTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := client.BucketExists(rctx, "homeroom-ready-probe")
		cancel()
		if err == nil {
			return nil
		}
		if code := minio.ToErrorResponse(err).Code; code != "" {
			return fmt.Errorf("another server answers on %s: %w", p.opts.Addr, err)
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	return errors.Join(errors.New("timed out"), lastErr)
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitErr is how the process exited; valid once Done is closed.
func (p *Process) ExitErr() error {
	<-p.done
	return p.err
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output is the end of what the server printed (its last 8 KiB).
func (p *Process) Output() string { return p.tail.String() }

// Stop asks the server to exit (SIGTERM) and waits until it has, killing it
// when timeout passes first. Stopping an exited server does nothing.
func (p *Process) Stop(timeout time.Duration) {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(timeout):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// Kill ends the server at once and waits until it has exited.
func (p *Process) Kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// FreeLoopbackAddr returns a 127.0.0.1 address with a port that was free a
// moment ago.
func FreeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
