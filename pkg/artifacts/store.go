// Package artifacts stores what the controller collects from student
// containers in an S3 bucket: files streamed out of Docker's archive API, the
// container log, and one manifest per student per run that graders rely on.
//
// Every call is bounded by a timeout derived from its context, because a Down
// waits on these calls before it may remove a container: a hung object store
// must surface as an error the controller can retry, never as a stuck pass.
package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// ErrNotFound is wrapped by errors for objects that do not exist.
var ErrNotFound = errors.New("artifacts: object not found")

const (
	// DefaultPartSize bounds the memory of one upload: minio-go buffers one
	// part at a time, and with an unknown size and no PartSize it would buffer
	// about 512 MiB.
	DefaultPartSize = 16 << 20
	// minPartSize is S3's smallest part other than the last.
	minPartSize = 5 << 20
	// maxParts is S3's largest number of parts in one multipart upload.
	maxParts = 10000

	DefaultOpTimeout   = 30 * time.Second
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultTransferTimeout is generous on purpose: it only has to stop an
	// upload that trickles forever; the idle timeout catches a stalled one.
	DefaultTransferTimeout = time.Hour
	pingTimeout            = 5 * time.Second

	// maxJSONSize bounds what GetJSON reads: a manifest lists files, it is
	// never large, and a corrupt object must not exhaust memory.
	maxJSONSize = 64 << 20
	// maxKeyLen is S3's limit on a key's length in bytes.
	maxKeyLen = 1024

	metaSHA256 = "sha256"
)

// Config says where artifacts go. Zero durations take the defaults above.
type Config struct {
	// Endpoint is host:port, or a URL whose scheme sets Secure.
	Endpoint  string
	AccessKey string
	SecretKey string
	Bucket    string
	Region    string // default us-east-1
	Secure    bool
	// PartSize is the multipart part size and so the memory one upload may
	// use. Default 16 MiB, at least 5 MiB.
	PartSize uint64

	// OpTimeout bounds one metadata call: stat, list, a small put or get.
	OpTimeout time.Duration
	// IdleTimeout ends a transfer that made no progress for this long.
	IdleTimeout time.Duration
	// TransferTimeout bounds one object's transfer overall.
	TransferTimeout time.Duration

	// UnsignedPayload sends UNSIGNED-PAYLOAD instead of a signed payload on
	// plain HTTP, for servers that cannot decode aws-chunked bodies; the
	// bytes are still checked by the upload's checksum or by Verify.
	UnsignedPayload bool

	// NoChecksums sends no SHA-256 checksum with uploads, so that Verify
	// reads every object back. Homeroom finds out at start whether the
	// server supports S3's additional checksums; this forces the fallback.
	NoChecksums bool
}

func (c Config) withDefaults() Config {
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.TransferTimeout <= 0 {
		c.TransferTimeout = DefaultTransferTimeout
	}
	return c
}

// Store reads and writes artifacts in one bucket.
type Store struct {
	client *minio.Client
	bucket string
	cfg    Config
	// checksums: each upload carries its SHA-256, which the server checks
	// as it stores the bytes and keeps, so Verify compares it instead of
	// reading the object back.
	checksums bool
}

// New connects to the object store and makes sure the bucket exists, so that
// a misconfigured store fails at startup rather than at the first Down.
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	host, secure, err := parseEndpoint(cfg.Endpoint, cfg.Secure)
	if err != nil {
		return nil, err
	}
	cfg.Secure = secure
	if err := s3utils.CheckValidBucketNameStrict(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("artifacts: bucket %q: %w", cfg.Bucket, err)
	}
	if cfg.PartSize < minPartSize {
		return nil, fmt.Errorf("artifacts: part size %d is below S3's minimum of %d", cfg.PartSize, minPartSize)
	}
	client := func(trailers bool) (*minio.Client, error) {
		c, err := minio.New(host, &minio.Options{
			Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
			Secure:    secure,
			Transport: newTransport(secure),
			Region:    cfg.Region,
			// A stream's checksum is known only after its last byte: it
			// goes in a trailer, which not every server reads.
			TrailingHeaders: trailers,
		})
		if err != nil {
			return nil, fmt.Errorf("artifacts: client for %s: %w", cfg.Endpoint, err)
		}
		return c, nil
	}
	plain, err := client(false)
	if err != nil {
		return nil, err
	}
	s := &Store{client: plain, bucket: cfg.Bucket, cfg: cfg}
	if err := s.EnsureBucket(ctx); err != nil {
		return nil, err
	}
	if !cfg.NoChecksums {
		trailing, err := client(true)
		if err != nil {
			return nil, err
		}
		if probeChecksums(ctx, trailing, cfg) {
			s.client, s.checksums = trailing, true
		}
	}
	return s, nil
}

// Checksums tells whether uploads carry a SHA-256 the server checks and
// keeps (else Verify reads objects back).
func (s *Store) Checksums() bool { return s.checksums }

// checksumProbeKey is where probeChecksums writes; no student prefix can
// be it.
const checksumProbeKey = "homeroom/checksum-probe"

// probeChecksums uploads a small object with its SHA-256 and reads the
// checksum the server kept: only a server that keeps the exact full-object
// SHA-256 can vouch for uploads. Any failure means no.
func probeChecksums(ctx context.Context, c *minio.Client, cfg Config) bool {
	ctx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
	defer cancel()
	data := []byte("homeroom checks that this server keeps SHA-256 checksums\n")
	sum := sha256.Sum256(data)
	_, err := c.PutObject(ctx, cfg.Bucket, checksumProbeKey, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
		Checksum: minio.ChecksumSHA256, DisableContentSha256: true, ContentType: "text/plain",
	})
	if err != nil {
		return false
	}
	defer c.RemoveObject(context.WithoutCancel(ctx), cfg.Bucket, checksumProbeKey, minio.RemoveObjectOptions{})
	info, err := c.StatObject(ctx, cfg.Bucket, checksumProbeKey, minio.StatObjectOptions{Checksum: true})
	return err == nil && info.ChecksumSHA256 == base64.StdEncoding.EncodeToString(sum[:])
}

func parseEndpoint(endpoint string, secure bool) (host string, isSecure bool, err error) {
	if endpoint == "" {
		return "", false, errors.New("artifacts: no endpoint configured")
	}
	if !strings.Contains(endpoint, "://") {
		return endpoint, secure, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", false, fmt.Errorf("artifacts: endpoint %q: %w", endpoint, err)
	}
	if u.Path != "" && u.Path != "/" {
		return "", false, fmt.Errorf("artifacts: endpoint %q: a path is not supported", endpoint)
	}
	switch u.Scheme {
	case "http":
		return u.Host, false, nil
	case "https":
		return u.Host, true, nil
	}
	return "", false, fmt.Errorf("artifacts: endpoint %q: scheme must be http or https", endpoint)
}

// newTransport has a timeout on every phase that is not a body transfer;
// transfers are bounded by the per-call idle and overall timeouts instead,
// because their length grows with the object.
func newTransport(secure bool) *http.Transport {
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Counted from the end of the request body: completing a multipart
		// upload may take the server a while to assemble, but not minutes.
		ResponseHeaderTimeout: 2 * time.Minute,
		// Objects are stored as sent; never let the transport decode them.
		DisableCompression: true,
	}
	if secure {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return tr
}

// Bucket is the bucket the store writes to.
func (s *Store) Bucket() string { return s.bucket }

// EnsureBucket creates the bucket if it is missing.
func (s *Store) EnsureBucket(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("artifacts: bucket %s: %w", s.bucket, err)
	}
	if ok {
		return nil
	}
	err = s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: s.cfg.Region})
	if err == nil {
		return nil
	}
	switch errorResponse(err).Code {
	case "BucketAlreadyOwnedByYou":
		return nil
	case "BucketAlreadyExists":
		// Another process won the race, or the server does not tell
		// owners apart: success only if we can use the bucket.
		if ok, herr := s.client.BucketExists(ctx, s.bucket); herr == nil && ok {
			return nil
		}
	}
	return fmt.Errorf("artifacts: create bucket %s: %w", s.bucket, err)
}

// Ping checks cheaply that the store answers and the bucket exists.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, min(pingTimeout, s.cfg.OpTimeout))
	defer cancel()
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("artifacts: ping %s: %w", s.cfg.Endpoint, err)
	}
	if !ok {
		return fmt.Errorf("artifacts: ping %s: bucket %s does not exist", s.cfg.Endpoint, s.bucket)
	}
	return nil
}

// PutJSON stores v as indented JSON. Unlike a stream, its checksum is known
// before the upload, so it also goes into the object's metadata.
func (s *Store) PutJSON(ctx context.Context, key string, v any) (Object, error) {
	if err := checkKey(key); err != nil {
		return Object{}, err
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return Object{}, fmt.Errorf("artifacts: encode %s: %w", key, err)
	}
	data = append(data, '\n')
	sum := sha256.Sum256(data)
	obj := Object{Key: key, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}

	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	info, err := s.client.PutObject(ctx, s.bucket, key, bytes.NewReader(data), obj.Size, minio.PutObjectOptions{
		ContentType:          "application/json",
		UserMetadata:         map[string]string{metaSHA256: obj.SHA256},
		PartSize:             s.cfg.PartSize,
		DisableContentSha256: s.cfg.UnsignedPayload,
	})
	if err != nil {
		return Object{}, fmt.Errorf("artifacts: put %s: %w", key, err)
	}
	if info.Size != obj.Size {
		return Object{}, fmt.Errorf("artifacts: put %s: server stored %d bytes, sent %d", key, info.Size, obj.Size)
	}
	return obj, nil
}

// GetJSON decodes the object at key into v.
func (s *Store) GetJSON(ctx context.Context, key string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return s.objectErr("get", key, err)
	}
	defer obj.Close()
	data, err := io.ReadAll(io.LimitReader(obj, maxJSONSize+1))
	if err != nil {
		return s.objectErr("get", key, err)
	}
	if len(data) > maxJSONSize {
		return fmt.Errorf("artifacts: get %s: larger than %d bytes", key, maxJSONSize)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("artifacts: decode %s: %w", key, err)
	}
	return nil
}

// Open streams the object at key. The read is bounded by the idle and
// transfer timeouts; the caller must Close the reader.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	tr := s.startTransfer(ctx)
	obj, err := s.client.GetObject(tr.ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		tr.stop()
		return nil, 0, s.objectErr("open", key, err)
	}
	info, err := obj.Stat()
	if err != nil {
		err = tr.explain(s.objectErr("open", key, err))
		obj.Close()
		tr.stop()
		return nil, 0, err
	}
	return &objectReader{obj: obj, tr: tr}, info.Size, nil
}

type objectReader struct {
	obj *minio.Object
	tr  *transfer
}

func (r *objectReader) Read(p []byte) (int, error) {
	n, err := r.obj.Read(p)
	if n > 0 {
		r.tr.touch()
	}
	if err != nil && err != io.EOF {
		err = r.tr.explain(err)
	}
	return n, err
}

func (r *objectReader) Close() error {
	err := r.obj.Close()
	r.tr.stop()
	return err
}

// ListKeys returns every key under prefix, sorted.
func (s *Store) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	var keys []string
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("artifacts: list %s: %w", prefix, obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	return keys, nil
}

// listDir returns the keys and the sub-prefixes directly under prefix, which
// must end in "/".
func (s *Store) listDir(ctx context.Context, prefix string) (keys, dirs []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			// Some file-backed servers answer a delimited listing of a prefix
			// that does not exist with NoSuchBucket; that is an empty listing
			// if the bucket is there.
			if errorResponse(obj.Err).Code == "NoSuchBucket" {
				if ok, herr := s.client.BucketExists(ctx, s.bucket); herr == nil && ok {
					return nil, nil, nil
				}
			}
			return nil, nil, fmt.Errorf("artifacts: list %s: %w", prefix, obj.Err)
		}
		if strings.HasSuffix(obj.Key, "/") {
			dirs = append(dirs, obj.Key)
		} else {
			keys = append(keys, obj.Key)
		}
	}
	return keys, dirs, nil
}

// objectErr wraps ErrNotFound for a missing object so that callers can tell
// "not collected" from "store unreachable".
func (s *Store) objectErr(op, key string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("artifacts: %s %s: %w", op, key, ErrNotFound)
	}
	return fmt.Errorf("artifacts: %s %s: %w", op, key, err)
}

func isNotFound(err error) bool {
	resp := errorResponse(err)
	return resp.Code == "NoSuchKey" || (resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket")
}

// errorResponse is the S3 error in err's chain, if any.
func errorResponse(err error) minio.ErrorResponse {
	var resp minio.ErrorResponse
	errors.As(err, &resp)
	return resp
}

// checkKey refuses keys S3 or a file-backed server would treat differently
// from what the caller means.
func checkKey(key string) error {
	switch {
	case key == "" || strings.HasSuffix(key, "/"):
		return fmt.Errorf("artifacts: key %q does not name an object", key)
	case len(key) > maxKeyLen:
		return fmt.Errorf("artifacts: key of %d bytes is longer than %d", len(key), maxKeyLen)
	case strings.HasPrefix(key, "/") || hasDotSegment(key) || strings.Contains(key, "//"):
		return fmt.Errorf("artifacts: key %q is not a clean relative path", key)
	}
	return s3utils.CheckValidObjectName(key)
}

func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
