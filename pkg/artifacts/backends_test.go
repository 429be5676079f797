package artifacts_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/internal/versitygw"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

// testPartSize is S3's minimum, so that a few MiB force multipart uploads.
const testPartSize = 5 << 20

// backend is a real S3 server the behavioural suite runs against.
type backend struct {
	name  string
	start func(t *testing.T) artifacts.Config
}

// backends is the embedded store, as the apiserver runs it: versitygw
// started by StartEmbedded with its generated keys. The tests' own S3
// servers (testenv.StartS3) run the same versitygw through the same code
// (internal/versitygw), so the suite runs once.
var backends = []backend{
	{"embedded", func(t *testing.T) artifacts.Config { return startEmbedded(t, t.TempDir()).Config("homeroom-artifacts") }},
}

// forEachBackend runs test against a fresh server of every backend.
func forEachBackend(t *testing.T, test func(t *testing.T, s *artifacts.Store)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, newStore(t, b.start(t)))
		})
	}
}

func newStore(t testing.TB, cfg artifacts.Config) *artifacts.Store {
	t.Helper()
	cfg.PartSize = testPartSize
	s, err := artifacts.New(testContext(t), cfg)
	if err != nil {
		t.Fatalf("artifacts.New: %v", err)
	}
	return s
}

func startEmbedded(t testing.TB, dir string) *versitygw.Embedded {
	t.Helper()
	e, err := versitygw.StartEmbedded(testContext(t), dir, "127.0.0.1:0", zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)))
	if errors.Is(err, versitygw.ErrNotFound) {
		testenv.Unavailable(t, "versitygw binary (scripts/ensure-versitygw.sh)")
	}
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(func() { stopEmbedded(t, e) })
	return e
}

func stopEmbedded(t testing.TB, e *versitygw.Embedded) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		t.Errorf("stop embedded: %v", err)
	}
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
