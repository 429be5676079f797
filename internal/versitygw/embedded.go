package versitygw

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapio"

	"github.com/homeroom/homeroom/pkg/artifacts"
)

// Embedded is the artifact store an apiserver without an object store runs:
// versitygw, a real S3 server, serving dir with its posix backend, as a
// child process of this one, so that artifacts are kept under the data dir
// through the same minio-go code path as with any other S3 server.
//
//   - It listens on loopback only and checks SigV4 signatures: requests
//     signed with other keys, and unsigned ones, are refused. Its keys are
//     generated once into dir's credentials file
//     (artifacts.EmbeddedCredentialsFile, mode 0600), where the controller
//     reads them too.
//   - Objects are files under dir/buckets/<bucket>/<key>, their metadata in
//     extended attributes (or under dir/sidecar where the filesystem has
//     none). That is where the file backend of Homeroom releases before
//     versitygw kept objects too: they are served as they are, without the
//     content type and user metadata it kept under dir/metadata.
//   - The process is supervised: if it exits, it is started again on the
//     same address, with backoff; Stop stops it, and on Linux the kernel
//     kills it if this process dies without stopping it.
//
// The binary is found by Binary: $HOMEROOM_VERSITYGW, next to the
// running executable, scripts/ensure-versitygw.sh's cache, or PATH.
type Embedded struct {
	// Endpoint is the host:port it serves (plain HTTP).
	Endpoint  string
	AccessKey string
	SecretKey string

	log      *zap.Logger
	opts     Options
	runCtx   context.Context // ends on Stop: no start after that
	cancel   context.CancelFunc
	stopping chan struct{}
	finished chan struct{} // closed when supervise returns

	mu   sync.Mutex
	proc *Process

	stopOnce sync.Once
}

// Restart backoff of a server that exits on its own; a server that ran for
// restartReset before it exited is restarted after the first delay again.
const (
	restartFirst = 250 * time.Millisecond
	restartMax   = 30 * time.Second
	restartReset = time.Minute
)

// loadOrCreateCredentials reads the credentials file, or makes it with new
// random keys if it does not exist yet. A file readable by others is made
// private again.
func loadOrCreateCredentials(path string, log *zap.Logger) (artifacts.EmbeddedCredentials, error) {
	dir := filepath.Dir(path)
	for range 2 {
		b, err := os.ReadFile(path)
		if err == nil {
			c, err := artifacts.ParseEmbeddedCredentials(b)
			if err != nil {
				return c, fmt.Errorf("embedded artifact store credentials %s: %w; remove it to make new ones", path, err)
			}
			if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
				log.Warn("embedded store credentials were readable by others; made private", zap.String("file", path), zap.Stringer("mode", fi.Mode().Perm()))
				if err := os.Chmod(path, 0o600); err != nil {
					return c, fmt.Errorf("embedded artifact store credentials: %w", err)
				}
			}
			return c, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return artifacts.EmbeddedCredentials{}, fmt.Errorf("embedded artifact store credentials: %w", err)
		}
		c := artifacts.EmbeddedCredentials{AccessKey: "homeroom-" + rand.Text()[:12], SecretKey: rand.Text() + rand.Text()}
		b, _ = json.Marshal(c)
		// Written whole under another name, then linked into place: a
		// reader never sees half a file, and of two processes starting at
		// once one makes the keys and both use them.
		tmp, err := os.CreateTemp(dir, ".artifacts-credentials-*")
		if err != nil {
			return c, fmt.Errorf("embedded artifact store credentials: %w", err)
		}
		_, werr := tmp.Write(append(b, '\n'))
		if werr == nil {
			werr = tmp.Sync()
		}
		werr = errors.Join(werr, tmp.Close())
		if werr == nil {
			werr = os.Link(tmp.Name(), path)
		}
		os.Remove(tmp.Name())
		if werr == nil {
			log.Info("embedded store credentials generated", zap.String("file", path))
			return c, nil
		}
		if !errors.Is(werr, fs.ErrExist) {
			return c, fmt.Errorf("embedded artifact store credentials: %w", werr)
		}
	}
	return artifacts.EmbeddedCredentials{}, fmt.Errorf("embedded artifact store credentials %s: could not be read or made", path)
}

// StartEmbedded starts versitygw serving dir (created 0700 if missing, as is
// the directory holding it) on listenAddr, which must be a loopback address;
// port 0 picks a free port, reported in Endpoint. It returns once the
// server answers requests signed with its keys.
func StartEmbedded(ctx context.Context, dir, listenAddr string, log *zap.Logger) (*Embedded, error) {
	return StartEmbeddedAt(ctx, os.Getenv(EnvBinary), dir, listenAddr, log)
}

// StartEmbeddedAt is StartEmbedded running the binary BinaryAt(bin) finds.
func StartEmbeddedAt(ctx context.Context, bin, dir, listenAddr string, log *zap.Logger) (*Embedded, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := requireLoopback(listenAddr); err != nil {
		return nil, err
	}
	bin, err := BinaryAt(bin)
	if err != nil {
		return nil, fmt.Errorf("embedded artifact store: %w; or configure an S3 store with HOMEROOM_S3_ENDPOINT", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("embedded artifact store dir %q: %w", dir, err)
	}
	root := filepath.Join(abs, "buckets")
	for _, d := range []string{filepath.Dir(abs), abs, root} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("embedded artifact store dir: %w", err)
		}
	}
	if err := os.Chmod(abs, 0o700); err != nil {
		return nil, fmt.Errorf("embedded artifact store dir: %w", err)
	}
	sidecar := ""
	if !DirHasXattrs(root) {
		sidecar = filepath.Join(abs, "sidecar")
		if err := os.MkdirAll(sidecar, 0o700); err != nil {
			return nil, fmt.Errorf("embedded artifact store dir: %w", err)
		}
	}
	creds, err := loadOrCreateCredentials(artifacts.EmbeddedCredentialsFile(abs), log)
	if err != nil {
		return nil, err
	}
	addr, err := resolvePort(listenAddr)
	if err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e := &Embedded{
		Endpoint:  addr,
		AccessKey: creds.AccessKey,
		SecretKey: creds.SecretKey,
		log:       log,
		opts: Options{
			Binary: bin, Addr: addr, Dir: root, Sidecar: sidecar,
			AccessKey: creds.AccessKey, SecretKey: creds.SecretKey, Private: true,
			Output: &zapio.Writer{Log: log.Named("versitygw"), Level: zap.DebugLevel},
		},
		runCtx:   runCtx,
		cancel:   cancel,
		stopping: make(chan struct{}),
		finished: make(chan struct{}),
	}
	// The first start follows ctx: an apiserver told to stop while it
	// starts does not wait for the store.
	startCtx, stopStart := context.WithCancel(runCtx)
	go func() {
		select {
		case <-ctx.Done():
		case <-startCtx.Done():
		}
		stopStart()
	}()
	proc, err := Start(startCtx, e.opts)
	stopStart()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("embedded artifact store: %w", err)
	}
	e.proc = proc
	go e.supervise(proc)
	log.Info("embedded object store started", zap.String("endpoint", addr), zap.String("dir", root),
		zap.String("versitygw", bin), zap.Int("pid", proc.Pid()), zap.Bool("sidecarMetadata", sidecar != ""))
	return e, nil
}

// resolvePort replaces port 0 with a port free on the address's host.
func resolvePort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("embedded artifact store address %q: %w", addr, err)
	}
	if port != "0" {
		return addr, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("embedded artifact store address %q: %w", addr, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// supervise starts the server again whenever it exits until Stop.
func (e *Embedded) supervise(proc *Process) {
	defer close(e.finished)
	delay := restartFirst
	started := time.Now()
	for {
		select {
		case <-e.stopping:
			return
		case <-proc.Done():
		}
		if time.Since(started) >= restartReset {
			delay = restartFirst
		}
		e.log.Error("embedded object store (versitygw) exited; starting it again",
			zap.Int("pid", proc.Pid()), zap.NamedError("exit", proc.ExitErr()),
			zap.String("output", proc.Output()), zap.Duration("in", delay))
		for {
			select {
			case <-e.stopping:
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, restartMax)
			next, err := Start(e.runCtx, e.opts)
			if err == nil {
				proc, started = next, time.Now()
				e.mu.Lock()
				e.proc = proc
				e.mu.Unlock()
				e.log.Info("embedded object store started again", zap.Int("pid", proc.Pid()))
				break
			}
			select {
			case <-e.stopping:
				return
			default:
			}
			e.log.Error("embedded object store did not start; trying again", zap.Error(err), zap.Duration("in", delay))
		}
	}
}

// Pid is the process id of the server running now.
func (e *Embedded) Pid() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.proc.Pid()
}

// Config is a client configuration for this server.
func (e *Embedded) Config(bucket string) artifacts.Config {
	return artifacts.Config{
		Endpoint:  e.Endpoint,
		AccessKey: e.AccessKey,
		SecretKey: e.SecretKey,
		Bucket:    bucket,
	}
}

// Stop stops the server, giving requests in flight until ctx ends (10 s
// without a deadline) before it is killed, and stops restarting it.
// Stopping again returns the first result.
func (e *Embedded) Stop(ctx context.Context) error {
	e.stopOnce.Do(func() {
		close(e.stopping)
		e.cancel()
		<-e.finished
		grace := 10 * time.Second
		if d, ok := ctx.Deadline(); ok {
			grace = max(time.Until(d), 0)
		}
		e.mu.Lock()
		proc := e.proc
		e.mu.Unlock()
		proc.Stop(grace)
		e.log.Info("embedded object store stopped", zap.Int("pid", proc.Pid()))
	})
	return nil
}

func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("embedded artifact store address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("embedded artifact store address %q: must be loopback", addr)
}
