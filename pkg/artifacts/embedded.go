package artifacts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
	"github.com/spf13/afero"
	"go.uber.org/zap"
)

// Embedded serves the S3 API in-process from a directory, so that a Homeroom
// without an object store keeps artifacts under its data dir through the
// same minio-go code path as with a real one.
//
// Limitations of gofakes3 v1.2.0 with its s3afero backend, which decide how
// far this is meant to go (one host, modest classes; use a real S3 server,
// e.g. versitygw, beyond that):
//   - No authentication: any signature is accepted. StartEmbedded therefore
//     listens on loopback only, and the keys below are placeholders.
//   - Multipart uploads are held in memory until completed, and completing
//     one assembles the whole object in memory before writing it: an object
//     larger than PartSize costs about twice its size in server memory, and
//     uploads in flight are lost on Stop. Objects up to PartSize go up in a
//     single PUT, which is streamed to disk.
//   - One lock serialises every object operation of the backend, including
//     the whole body of a single PUT: uploads do not run in parallel.
//   - A PUT writes the object's file in place, and its metadata only once
//     the body is complete. An object file without metadata then fails every
//     HEAD, GET and listing that reaches it with 500 (the metadata loader
//     hashes the missing metadata file instead of the object), so
//     fixedBackend deletes what a failed PUT leaves behind: a failed
//     overwrite loses the previous object rather than corrupting it. A crash
//     mid-PUT can still leave such a file; overwriting the key heals it.
//   - A PUT merges the old object's metadata into the new one; fixedBackend
//     deletes the old object first, as S3 replaces metadata.
//   - Parts sent with aws-chunked streaming signatures are stored with the
//     chunk framing; Config() sets UnsignedPayload to avoid them.
//   - User metadata (x-amz-meta-*) is stored in a JSON file per object under
//     dir/metadata and returned on HEAD and GET; it persists across restarts.
//   - A delimited listing of a prefix that does not exist fails with
//     NoSuchBucket; listDir treats that as empty.
type Embedded struct {
	// Endpoint is the bound host:port (plain HTTP).
	Endpoint  string
	AccessKey string
	SecretKey string

	srv    *http.Server
	served chan error

	stopOnce sync.Once
	stopErr  error
}

const (
	embeddedAccessKey = "homeroom"
	embeddedSecretKey = "homeroom-embedded"
)

// StartEmbedded serves the S3 API from dir (objects under dir/buckets,
// metadata under dir/metadata) on listenAddr, which must be a loopback
// address; port 0 picks a free port, reported in Endpoint.
func StartEmbedded(ctx context.Context, dir, listenAddr string, log *zap.Logger) (*Embedded, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := requireLoopback(listenAddr); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("artifacts: embedded store dir %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("artifacts: embedded store dir: %w", err)
	}
	backend, err := s3afero.MultiBucket(afero.NewBasePathFs(afero.NewOsFs(), abs))
	if err != nil {
		return nil, fmt.Errorf("artifacts: embedded store backend: %w", err)
	}
	faker := gofakes3.New(fixedBackend{backend, afero.NewBasePathFs(afero.NewOsFs(), filepath.Join(abs, "buckets"))}, gofakes3.WithLogger(fakeS3Log{log}))

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("artifacts: embedded store listen: %w", err)
	}
	srv := &http.Server{
		Handler:           faker.Server(),
		ReadHeaderTimeout: 10 * time.Second,
		// A request body is at most one part or one small object, since
		// larger objects go up in parts of PartSize.
		ReadTimeout: 30 * time.Minute,
		// A response body can be a whole object read back or downloaded.
		WriteTimeout:   2 * time.Hour,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       zap.NewStdLog(log.Named("http")),
	}
	e := &Embedded{
		Endpoint:  ln.Addr().String(),
		AccessKey: embeddedAccessKey,
		SecretKey: embeddedSecretKey,
		srv:       srv,
		served:    make(chan error, 1),
	}
	go func() { e.served <- srv.Serve(ln) }()
	log.Info("embedded object store started", zap.String("endpoint", e.Endpoint), zap.String("dir", abs))
	return e, nil
}

// Config is a client configuration for this server.
func (e *Embedded) Config(bucket string) Config {
	return Config{
		Endpoint:        e.Endpoint,
		AccessKey:       e.AccessKey,
		SecretKey:       e.SecretKey,
		Bucket:          bucket,
		UnsignedPayload: true,
	}
}

// Stop waits for requests in flight until ctx ends, then closes the rest.
// Stopping again returns the first result.
func (e *Embedded) Stop(ctx context.Context) error {
	e.stopOnce.Do(func() { e.stopErr = e.stop(ctx) })
	return e.stopErr
}

func (e *Embedded) stop(ctx context.Context) error {
	err := e.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, e.srv.Close())
	}
	if serr := <-e.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("artifacts: stop embedded store: %w", err)
	}
	return nil
}

func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("artifacts: embedded store address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("artifacts: embedded store address %q: must be loopback, the embedded server does not authenticate", addr)
}

type fakeS3Log struct{ log *zap.Logger }

func (l fakeS3Log) Print(level gofakes3.LogLevel, v ...any) {
	msg := fmt.Sprint(v...)
	switch level {
	case gofakes3.LogErr:
		l.log.Error(msg)
	case gofakes3.LogWarn:
		l.log.Warn(msg)
	default:
		l.log.Debug(msg)
	}
}

// fixedBackend corrects two behaviours of s3afero's PutObject that differ
// from S3 (see Embedded):
//   - it carries the old object's metadata over to the new one (and leaves
//     the old object's file open doing so); S3 replaces it, and a stale
//     x-amz-meta-sha256 would make Verify compare the wrong checksum. So an
//     unconditional PUT deletes the old object first; s3afero overwrites in
//     place anyway, so no reader could have relied on the old object
//     surviving a failed PUT.
//   - a PUT that fails after it started writing leaves a file without
//     metadata that breaks reads and listings: it is deleted. A PUT that fails
//     before reading its body (missing bucket, failed condition) has not
//     touched the object.
//   - deleting an object leaves its directories, which listings then show
//     as prefixes: a deleted autosave would still be listed as a run. A
//     delete removes the directories it empties.
type fixedBackend struct {
	*s3afero.MultiBucketBackend
	buckets afero.Fs // the backend's buckets directory
}

func (b fixedBackend) DeleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	res, err := b.MultiBucketBackend.DeleteObject(bucket, key)
	if err == nil {
		b.prune(bucket, key)
	}
	return res, err
}

func (b fixedBackend) DeleteMulti(bucket string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	res, err := b.MultiBucketBackend.DeleteMulti(bucket, keys...)
	for _, d := range res.Deleted {
		b.prune(bucket, d.Key)
	}
	return res, err
}

// prune removes the directories of key up to its bucket that are empty; a
// directory that is not stops it.
func (b fixedBackend) prune(bucket, key string) {
	root := path.Clean(bucket)
	for dir := path.Dir(path.Join(bucket, key)); dir != root && strings.HasPrefix(dir, root+"/"); dir = path.Dir(dir) {
		if b.buckets.Remove(filepath.FromSlash(dir)) != nil {
			return
		}
	}
}

func (b fixedBackend) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, conditions *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	if conditions == nil {
		if _, err := b.MultiBucketBackend.DeleteObject(bucket, key); err != nil {
			return gofakes3.PutObjectResult{}, err
		}
	}
	body := &touchedReader{r: input}
	res, err := b.MultiBucketBackend.PutObject(bucket, key, meta, body, size, conditions)
	if err != nil && body.touched {
		if _, derr := b.MultiBucketBackend.DeleteObject(bucket, key); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	return res, err
}

type touchedReader struct {
	r       io.Reader
	touched bool
}

func (t *touchedReader) Read(p []byte) (int, error) {
	t.touched = true
	return t.r.Read(p)
}
