package artifacts_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

// flipProxy stands between Homeroom and a real S3 server: it flips one byte
// in the body of every upload whose key contains "flip", as a bad cable or
// disk would, and counts the object reads (GETs) it passes.
type flipProxy struct {
	*httptest.Server
	gets atomic.Int64
}

func newFlipProxy(t *testing.T, target string) *flipProxy {
	t.Helper()
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatal(err)
	}
	p := &flipProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/classes/") {
			p.gets.Add(1)
		}
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "flip") && r.Body != nil {
			b, _ := io.ReadAll(r.Body)
			if len(b) > 100 {
				b[len(b)/2] ^= 0x20
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func storeVia(t *testing.T, p *flipProxy, cfg artifacts.Config) *artifacts.Store {
	t.Helper()
	cfg.Endpoint = strings.TrimPrefix(p.URL, "http://")
	s, err := artifacts.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// An upload carries its SHA-256 and the server checks it as it stores the
// bytes: a byte flipped on the way is refused at upload, and Verify trusts
// the server's checksum instead of reading each object back. On a server
// without checksums (forced here), the flip gets stored and Verify, reading
// back, still catches it.
func TestByteFlipsAreCaughtBothWays(t *testing.T) {
	s3 := testenv.StartS3(t)
	ctx := context.Background()
	p := newFlipProxy(t, s3.Config().Endpoint)
	body := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB

	t.Run("checksums", func(t *testing.T) {
		s := storeVia(t, p, s3.Config())
		if !s.Checksums() {
			t.Fatal("versitygw keeps SHA-256 checksums, but the store did not find out")
		}
		if _, err := s.PutStream(ctx, "classes/c/r/alice/files/flip.txt", bytes.NewReader(body), int64(len(body)), ""); err == nil {
			t.Error("an upload with a byte flipped on the way was stored")
		}
		obj, err := s.PutStream(ctx, "classes/c/r/alice/files/ok.txt", bytes.NewReader(body), int64(len(body)), "")
		if err != nil {
			t.Fatal(err)
		}
		before := p.gets.Load()
		if err := s.Verify(ctx, []artifacts.Object{obj}); err != nil {
			t.Fatalf("verify: %v", err)
		}
		if n := p.gets.Load() - before; n != 0 {
			t.Errorf("Verify read the object back %d times although the server vouches for it", n)
		}
		bad := obj
		bad.SHA256 = strings.Repeat("0", 64)
		if err := s.Verify(ctx, []artifacts.Object{bad}); err == nil || !strings.Contains(err.Error(), "checksum") {
			t.Errorf("a recorded sha256 the server's checksum contradicts: %v", err)
		}
	})

	t.Run("read back", func(t *testing.T) {
		cfg := s3.Config()
		cfg.NoChecksums, cfg.UnsignedPayload = true, true // nothing else checks the payload
		s := storeVia(t, p, cfg)
		obj, err := s.PutStream(ctx, "classes/c/r/bob/files/flip.txt", bytes.NewReader(body), int64(len(body)), "")
		if err != nil {
			t.Fatalf("upload: %v", err)
		}
		before := p.gets.Load()
		err = s.Verify(ctx, []artifacts.Object{obj})
		if err == nil || !strings.Contains(err.Error(), "content sha256") {
			t.Errorf("a stored flipped byte was not caught: %v", err)
		}
		if p.gets.Load() == before {
			t.Error("Verify did not read the object back")
		}
	})
}
