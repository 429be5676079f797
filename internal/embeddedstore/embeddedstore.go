// Package embeddedstore holds the store the apiserver runs when no MongoDB is
// configured: FerretDB in the apiserver's process, and the proxy in front of
// it that makes its conditional writes atomic. Only the apiserver and tests
// import it; the controller is a client of the store it serves.
package embeddedstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/zap"
)

// Server is FerretDB v1.24.2 running in this process with its SQLite
// backend under a directory, so that Homeroom runs with no database server to
// install; the same driver code that talks to MongoDB talks to it.
//
// FerretDB v1 executes update, findAndModify and delete as a SELECT followed
// by a write keyed by _id alone, in separate statements: the version in a
// filter is checked in Go, not by SQLite, so two conditional writes that run
// at once can both succeed and one is lost. The store's optimistic
// concurrency depends on that check being atomic. Server therefore does not
// expose FerretDB itself: clients connect to a small proxy that runs
// commands that may write one at a time, which makes each such command atomic
// with respect to the others. Reads pass unserialized.
//
// FerretDB checks no credentials, so whoever can connect owns the store
// (and could, for one, insert an admin token). Both listeners are Unix
// sockets only this user can connect to: FerretDB's in the store's own
// directory (mode 0700), the proxy's with mode 0600. Nothing listens on TCP.
type Server struct {
	// URI is what clients connect to: the proxy's socket, as a
	// mongodb:// URI (see URI).
	URI string

	cancel     context.CancelFunc
	ferretDone chan error // receives Run's result once FerretDB has stopped
	proxy      *proxy
	stopOnce   sync.Once
	stopErr    error
}

// startTimeout bounds startup when the caller's context has no deadline.
// FerretDB with SQLite is up in well under a second; a minute means
// something is wrong, such as a data directory on a hung filesystem.
const startTimeout = time.Minute

// newMu serializes ferretdb.New, which writes a package-level variable of
// FerretDB's (its version info) and so races when two instances start at
// once, as they do in parallel tests.
var newMu sync.Mutex

// ferretSocket is the name of FerretDB's own socket in the store's
// directory, which only the proxy connects to.
const ferretSocket = "ferretdb.sock"

// MaxSocketPath is the longest path of a Unix socket: the kernel's
// sockaddr_un holds 108 bytes, the last a NUL.
const MaxSocketPath = 107

// URI is the mongodb:// URI of a server listening on the Unix socket at the
// absolute path sock. The driver takes a host that ends in "sock" for a
// socket's path and decodes it with url.QueryUnescape, of which
// url.QueryEscape is the inverse: with url.PathEscape a "+" in the path
// would come back as a space, and an "@" would be read as user info.
func URI(sock string) string {
	return "mongodb://" + url.QueryEscape(sock)
}

// Start starts FerretDB with its data under dir (created if missing, and
// made 0700: FerretDB's socket is in it) and the proxy listening on the Unix
// socket sock (mode 0600). A socket left at either path by a process that is
// gone, as after a crash, is removed first; one that a live process still
// serves, or a file that is not a socket, is an error. Start returns once a
// client can ping it through sock. ctx bounds the startup only: the server
// runs until Stop, so that its users can be shut down before it.
func Start(ctx context.Context, dir, sock string, log *zap.Logger) (*Server, error) {
	if log == nil {
		log = zap.NewNop()
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	if sock, err = filepath.Abs(sock); err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	// FerretDB unescapes the URL below and splices the path into SQLite's
	// own URI syntax unescaped: with these characters it opens the wrong
	// file or fails only on the first write.
	if strings.ContainsAny(dir, "%?#") {
		return nil, fmt.Errorf("embedded store: directory %q: FerretDB cannot use a path containing %%, ? or #", dir)
	}
	backend := filepath.Join(dir, ferretSocket)
	for _, p := range []string{sock, backend} {
		if len(p) > MaxSocketPath {
			return nil, fmt.Errorf("embedded store: socket path %s is %d bytes, longer than the %d a Unix socket's path may have", p, len(p), MaxSocketPath)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	// An existing directory keeps its mode in MkdirAll.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	for _, p := range []string{sock, backend} {
		if err := removeStaleSocket(p); err != nil {
			return nil, fmt.Errorf("embedded store: %w", err)
		}
	}

	newMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{
			// Only the proxy connects to it; see Server.
			Unix: backend,
		},
		Logger:  slog.New(&slogToZap{log: log.Named("ferretdb")}),
		Handler: "sqlite",
		// FerretDB wants a "file:" URL of a directory, slash-terminated.
		SQLiteURL: (&url.URL{Scheme: "file", Path: dir + "/"}).String(),
	})
	newMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}

	ln, err := listenPrivate(sock)
	if err != nil {
		// Run was never called, so FerretDB's listener and SQLite files
		// are still open; running it on a cancelled context closes them.
		cctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = f.Run(cctx)
		return nil, fmt.Errorf("embedded store: %w", err)
	}

	// Not derived from ctx: see the doc comment.
	runCtx, cancel := context.WithCancel(context.Background())
	e := &Server{
		URI:        URI(sock),
		cancel:     cancel,
		ferretDone: make(chan error, 1),
		proxy:      newProxy(ln, backend, log.Named("ferretdb-proxy")),
	}
	go func() { e.ferretDone <- f.Run(runCtx) }()
	go e.proxy.serve()

	if err := e.waitReady(ctx); err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	log.Info("embedded store started", zap.String("socket", sock), zap.String("dir", dir))
	return e, nil
}

// listenPrivate listens on a Unix socket at path that only this user can
// connect to (connecting needs write permission on the socket). The socket
// is made with the process's umask and narrowed right after; the apiserver
// makes the data dir 0700 before, so that no one else can reach it in
// between.
func listenPrivate(path string) (net.Listener, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// removeStaleSocket removes the socket at path if no process serves it any
// more, so that a crash does not stop the next start. A socket something
// still answers on (another apiserver on the same data dir) and a file that
// is not a socket are left alone, and are errors.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket: move it away", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s: another process serves this store (another apiserver on the same data dir?)", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.Remove(path)
}

// waitReady pings through the proxy, which proves the whole path (proxy,
// FerretDB, SQLite directory) works rather than just that a port is open.
func (e *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(e.URI).SetServerSelectionTimeout(startTimeout))
	if err != nil {
		return err
	}
	defer func() { _ = client.Disconnect(context.WithoutCancel(ctx)) }()
	if err := client.Ping(ctx, nil); err != nil {
		return fmt.Errorf("wait for FerretDB: %w", err)
	}
	return nil
}

// Stop closes client connections, stops FerretDB and waits until its files
// are closed, so that another instance may open the same directory. It is
// safe to call more than once.
func (e *Server) Stop() error {
	e.stopOnce.Do(func() {
		// Proxy first: FerretDB gives open connections a grace period
		// before it stops, and closing them ourselves spares that wait.
		e.proxy.close()
		e.cancel()
		e.stopErr = <-e.ferretDone
	})
	return e.stopErr
}
