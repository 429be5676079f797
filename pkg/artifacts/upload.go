package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
)

// Object is one stored object as the uploader saw it. The manifest is the
// record of these checksums: a streamed object's sha256 is known only after
// its last byte was sent, too late for the object's own metadata.
type Object struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ErrIdle is the cause of a transfer that made no progress for IdleTimeout.
var ErrIdle = errors.New("artifacts: transfer made no progress")

// smallStreamMax is how much of a stream of unknown size PutStream reads
// ahead to find out whether it is small.
const smallStreamMax = 1 << 20

// verifyParallel bounds how many objects Verify reads back at once.
const verifyParallel = 4

// PutStream uploads r under key, reading exactly size bytes, or until EOF if
// size is -1. Memory is bounded by PartSize whatever the size. The sha256 is
// computed from the bytes as they are sent and returned; it is not stored in
// the object's metadata (see Object), and Verify checks it by reading the
// object back.
//
// The idle timeout also ends a transfer whose source stops yielding data. The
// source's pending Read cannot be interrupted, though: it finishes in the
// background once the caller closes the source or ends its context (Docker's
// streams end with their context), and the source must not be read again.
func (s *Store) PutStream(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Object, error) {
	if err := checkKey(key); err != nil {
		return Object{}, err
	}
	if size < -1 {
		return Object{}, fmt.Errorf("artifacts: put %s: invalid size %d", key, size)
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	tr := s.startTransfer(ctx)
	defer tr.stop()

	src := &hashingReader{r: &ctxReader{ctx: tr.ctx, r: r}, h: sha256.New(), limit: size, tr: tr}
	var body io.Reader = src
	if size < 0 {
		// Most streams of unknown size (container logs, manifests) are
		// small: send those in one PUT rather than a multipart upload of one
		// part, which also keeps empty ones working on servers that refuse
		// empty parts. The head grows with what the stream holds: a buffer
		// of the whole limit (and ctxReader's to match) for each student's
		// logs and manifest was 4 MiB a student to zero in every Down.
		var head bytes.Buffer
		n, err := io.CopyN(&head, src, min(smallStreamMax, int64(s.cfg.PartSize)))
		switch err {
		case nil:
			body = io.MultiReader(&head, src)
		case io.EOF:
			body, size = bytes.NewReader(head.Bytes()), n
		default:
			return Object{}, fmt.Errorf("artifacts: put %s: read source: %w", key, tr.explain(err))
		}
	}
	opts := minio.PutObjectOptions{
		ContentType:          contentType,
		PartSize:             s.partSizeFor(size),
		Progress:             progress{tr},
		DisableContentSha256: s.cfg.UnsignedPayload,
	}
	if s.checksums {
		// The server checks the bytes against the SHA-256 as it stores
		// them, which also covers the payload: no signed payload besides.
		opts.Checksum, opts.DisableContentSha256 = minio.ChecksumSHA256, true
	}
	info, err := s.client.PutObject(tr.ctx, s.bucket, key, body, size, opts)
	if err != nil {
		if src.err != nil && tr.ctx.Err() == nil {
			// minio-go reports a failing body as a failing connection.
			return Object{}, fmt.Errorf("artifacts: put %s: read source: %w", key, src.err)
		}
		return Object{}, fmt.Errorf("artifacts: put %s: %w", key, tr.explain(err))
	}
	if size >= 0 && src.n != size {
		return Object{}, fmt.Errorf("artifacts: put %s: source ended after %d of %d bytes", key, src.n, size)
	}
	if info.Size != src.n {
		return Object{}, fmt.Errorf("artifacts: put %s: upload reported %d bytes, sent %d", key, info.Size, src.n)
	}
	return Object{Key: key, Size: src.n, SHA256: hex.EncodeToString(src.h.Sum(nil))}, nil
}

// partSizeFor keeps PartSize unless the object would need more than S3's
// 10000 parts.
func (s *Store) partSizeFor(size int64) uint64 {
	ps := s.cfg.PartSize
	if size > 0 && uint64(size) > ps*maxParts {
		const mib = 1 << 20
		ps = (uint64(size)/maxParts/mib + 1) * mib
	}
	return ps
}

// hashingReader hashes and counts the source as it is read. With a limit
// (>= 0) it reads exactly that much: a source longer than announced must not
// make a request body longer than its Content-Length, and a shorter one fails
// at once rather than as a request minio-go might retry.
type hashingReader struct {
	r     io.Reader
	h     hash.Hash
	n     int64
	limit int64
	err   error // the source's first error other than EOF
	tr    *transfer
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	if hr.limit >= 0 {
		if hr.n >= hr.limit {
			return 0, io.EOF
		}
		p = p[:min(int64(len(p)), hr.limit-hr.n)]
	}
	n, err := hr.r.Read(p)
	if n > 0 {
		hr.h.Write(p[:n])
		hr.n += int64(n)
		hr.tr.touch()
	}
	if err == io.EOF && hr.limit >= 0 && hr.n < hr.limit {
		// Wrapped, so that minio-go, which tolerates a bare
		// io.ErrUnexpectedEOF at the end of a part, does not.
		err = fmt.Errorf("source ended after %d of %d bytes: %w", hr.n, hr.limit, io.ErrUnexpectedEOF)
	}
	if err != nil && err != io.EOF && hr.err == nil {
		hr.err = err
	}
	return n, err
}

// ctxReader makes a blocking source give way to the transfer's context.
// net/http waits for a request body's Read to return before it gives up a
// canceled request, and minio-go keeps the transport from closing the body,
// so without this a stalled source would hold the upload past every timeout.
// Each Read runs in its own goroutine on a buffer of the reader's; a Read
// abandoned at cancellation keeps that buffer and ends with the source.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	buf []byte
}

type readResult struct {
	n   int
	err error
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := context.Cause(c.ctx); err != nil {
		return 0, err
	}
	if cap(c.buf) < len(p) {
		c.buf = make([]byte, len(p))
	}
	buf := c.buf[:len(p)]
	done := make(chan readResult, 1)
	go func() {
		n, err := c.r.Read(buf)
		done <- readResult{n, err}
	}()
	select {
	case res := <-done:
		return copy(p, buf[:res.n]), res.err
	case <-c.ctx.Done():
		// The abandoned Read may still write buf; this reader is never
		// read again, since its context has ended.
		c.buf = nil
		return 0, context.Cause(c.ctx)
	}
}

// progress receives the bytes minio-go sends to the server, so that a part
// upload counts as progress even when the source is not being read.
type progress struct{ tr *transfer }

func (p progress) Read(b []byte) (int, error) {
	p.tr.touch()
	return len(b), nil
}

// Verify checks that every object exists with the recorded size and sha256.
// The controller removes a container only after Verify succeeds, so it
// proves the bytes, not just the name: an object the server keeps a
// full-object SHA-256 checksum of (uploaded in one part while the server
// supports checksums; see Checksums) is checked against that, which the
// server computed from the bytes it stored; one carrying a sha256 in its
// metadata (PutJSON) against that; any other object is read back and
// hashed. All failures are reported, joined.
func (s *Store) Verify(ctx context.Context, objs []Object) error {
	errs := make([]error, len(objs))
	sem := make(chan struct{}, verifyParallel)
	var wg sync.WaitGroup
	for i, o := range objs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = fmt.Errorf("artifacts: verify %s: %w", o.Key, ctx.Err())
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = s.verifyOne(ctx, o)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Store) verifyOne(ctx context.Context, o Object) error {
	if len(o.SHA256) != sha256.Size*2 {
		return fmt.Errorf("artifacts: verify %s: no sha256 recorded", o.Key)
	}
	statCtx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	info, err := s.client.StatObject(statCtx, s.bucket, o.Key, minio.StatObjectOptions{Checksum: s.checksums})
	cancel()
	if err != nil {
		return s.objectErr("verify", o.Key, err)
	}
	if info.Size != o.Size {
		return fmt.Errorf("artifacts: verify %s: size is %d, recorded %d", o.Key, info.Size, o.Size)
	}
	if sum, err := base64.StdEncoding.DecodeString(info.ChecksumSHA256); err == nil && len(sum) == sha256.Size {
		// A full-object checksum; a multipart upload's is composite
		// ("…-N") and does not decode, so that object is read back.
		if got := hex.EncodeToString(sum); !strings.EqualFold(got, o.SHA256) {
			return fmt.Errorf("artifacts: verify %s: stored checksum %s, recorded %s", o.Key, got, o.SHA256)
		}
		return nil
	}
	if sum := userMetadata(info, metaSHA256); sum != "" {
		if !strings.EqualFold(sum, o.SHA256) {
			return fmt.Errorf("artifacts: verify %s: stored sha256 %s, recorded %s", o.Key, sum, o.SHA256)
		}
		return nil
	}
	sum, n, err := s.hashObject(ctx, o.Key)
	if err != nil {
		return err
	}
	if n != o.Size {
		return fmt.Errorf("artifacts: verify %s: read %d bytes, recorded %d", o.Key, n, o.Size)
	}
	if !strings.EqualFold(sum, o.SHA256) {
		return fmt.Errorf("artifacts: verify %s: content sha256 %s, recorded %s", o.Key, sum, o.SHA256)
	}
	return nil
}

func (s *Store) hashObject(ctx context.Context, key string) (string, int64, error) {
	rc, _, err := s.Open(ctx, key)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return "", n, fmt.Errorf("artifacts: verify %s: read back: %w", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func userMetadata(info minio.ObjectInfo, name string) string {
	for k, v := range info.UserMetadata {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// transfer bounds one object's transfer: overall by TransferTimeout, and by
// IdleTimeout since the last byte moved, so that a slow but moving upload of
// a large file is allowed while a stalled one is not.
type transfer struct {
	ctx  context.Context
	last atomic.Int64 // unix nanoseconds of the last progress
	stop func()
}

func (s *Store) startTransfer(parent context.Context) *transfer {
	idle := s.cfg.IdleTimeout
	ctx, cancelTimeout := context.WithTimeoutCause(parent, s.cfg.TransferTimeout,
		fmt.Errorf("artifacts: transfer took longer than %s", s.cfg.TransferTimeout))
	ctx, cancel := context.WithCancelCause(ctx)
	t := &transfer{ctx: ctx}
	t.touch()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(max(idle/8, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if time.Since(time.Unix(0, t.last.Load())) > idle {
					cancel(fmt.Errorf("%w for %s", ErrIdle, idle))
					return
				}
			}
		}
	}()
	var once sync.Once
	t.stop = func() {
		once.Do(func() {
			cancel(nil)
			<-done
			cancelTimeout()
		})
	}
	return t
}

func (t *transfer) touch() { t.last.Store(time.Now().UnixNano()) }

// explain adds why the transfer's context ended, which minio-go reports only
// as "context canceled".
func (t *transfer) explain(err error) error {
	if t.ctx.Err() == nil {
		return err
	}
	cause := context.Cause(t.ctx)
	if cause == nil || errors.Is(err, cause) {
		return err
	}
	return fmt.Errorf("%w (%w)", err, cause)
}
