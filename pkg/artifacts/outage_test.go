package artifacts_test

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

// blockingReader yields its data, then blocks until released, as a Docker
// stream of a container that stopped writing would.
type blockingReader struct {
	data    *bytes.Reader
	release chan struct{}
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if r.data.Len() > 0 {
		return r.data.Read(p)
	}
	<-r.release
	return 0, io.ErrUnexpectedEOF
}

func TestPutStreamIdleTimeout(t *testing.T) {
	forEachBackendConfig(t, func(t *testing.T, cfg artifacts.Config) {
		cfg.IdleTimeout = 300 * time.Millisecond
		s := newStore(t, cfg)
		src := &blockingReader{data: bytes.NewReader(randomBytes(64<<10, 11)), release: make(chan struct{})}
		t.Cleanup(func() { close(src.release) })

		start := time.Now()
		// Known size within one part: a single PUT whose body stalls.
		_, err := s.PutStream(testContext(t), "stall.bin", src, 1<<20, "")
		if !errors.Is(err, artifacts.ErrIdle) {
			t.Fatalf("PutStream from a stalled source: %v, want ErrIdle", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("PutStream took %s to give up", d)
		}
		// The server is still usable afterwards (gofakes3 holds a lock
		// during a single PUT).
		if err := s.Ping(testContext(t)); err != nil {
			t.Errorf("Ping after an abandoned upload: %v", err)
		}
		if _, err := s.PutStream(testContext(t), "after.bin", bytes.NewReader([]byte("ok")), 2, ""); err != nil {
			t.Errorf("PutStream after an abandoned upload: %v", err)
		}
		if keys, err := s.ListKeys(testContext(t), ""); err != nil || !slices.Equal(keys, []string{"after.bin"}) {
			t.Errorf("after an abandoned upload the bucket holds %v (%v), want only after.bin", keys, err)
		}
	})
}

func forEachBackendConfig(t *testing.T, test func(t *testing.T, cfg artifacts.Config)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b.start(t))
		})
	}
}

// The S3 server going away mid-collection must fail the upload promptly, and
// the store must work again once the server is back.
func TestS3ServerStopsMidUpload(t *testing.T) {
	srv := testenv.StartS3(t)
	cfg := srv.Config()
	cfg.IdleTimeout = 2 * time.Second
	cfg.OpTimeout = 3 * time.Second
	s := newStore(t, cfg)
	ctx := testContext(t)

	pr, pw := io.Pipe()
	defer pr.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := s.PutStream(ctx, "outage/big.bin", onlyReader{pr}, -1, "")
		errc <- err
	}()
	chunk := randomBytes(1<<20, 12)
	for range testPartSize/len(chunk) + 2 { // past the first part
		if _, err := pw.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	srv.Stop()
	// Keep feeding until the upload gives up, as a live container would.
	go func() {
		for {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
	}()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("PutStream succeeded with the server stopped")
		}
		t.Logf("PutStream with the server stopped: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("PutStream did not give up within a minute of the server stopping")
	}
	pr.CloseWithError(errors.New("test done"))

	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded with the server stopped")
	}
	srv.Start()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	obj, err := s.PutStream(ctx, "outage/after.bin", bytes.NewReader([]byte("back")), 4, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, []artifacts.Object{obj}); err != nil {
		t.Fatal(err)
	}
}
