package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/homeroom/homeroom/internal/embeddedstore"
	"github.com/homeroom/homeroom/pkg/store"
)

// storeTimeout bounds starting, opening and cleaning up a test's store; the
// embedded one starts in milliseconds, so this only matters when it is stuck.
const storeTimeout = 30 * time.Second

// Store returns a store for the test on a server of its own (or, with
// HOMEROOM_TEST_MONGO_URI, on a database of its own on that server). It is
// closed, and the server stopped, when the test ends.
func Store(t testing.TB) *store.Store {
	t.Helper()
	uri, database := StoreURI(t)
	return OpenStore(t, uri, database)
}

// StoreURI returns a server and a database name for the test, for tests that
// open several clients (as the apiserver and the controller each do). With
// HOMEROOM_TEST_MONGO_URI set that server is used, and the database, named
// after the test, is dropped when the test ends; otherwise an embedded
// FerretDB is started in a temporary directory and stopped at the end.
func StoreURI(t testing.TB) (uri, database string) {
	t.Helper()
	if uri := os.Getenv("HOMEROOM_TEST_MONGO_URI"); uri != "" {
		database := uniqueDatabase(t)
		t.Cleanup(func() { dropDatabase(t, uri, database) })
		return uri, database
	}
	return StartStore(t).URI, store.DefaultDatabase
}

// StartStore starts an embedded FerretDB for the test, laid out as the
// apiserver lays out its data dir (the store in store/, the socket beside it
// as store.sock), and stops it when the test ends.
func StartStore(t testing.TB) *embeddedstore.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	data := t.TempDir()
	e, err := embeddedstore.Start(ctx, filepath.Join(data, "store"), filepath.Join(data, "store.sock"), storeLogger(t))
	if err != nil {
		t.Fatalf("start embedded store: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("stop embedded store: %v", err)
		}
	})
	return e
}

// OpenStore opens a client of uri's database for the test and closes it when
// the test ends (before the server stops, cleanups running in reverse).
func OpenStore(t testing.TB, uri, database string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	s, err := store.Open(ctx, uri, database, storeLogger(t))
	if err != nil {
		// Not Unavailable: the embedded server is always there, and a
		// HOMEROOM_TEST_MONGO_URI that does not answer is a mistake to report.
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// storeLogger shows warnings and errors in the test's output, where they
// help explain a failure, and keeps FerretDB's chatter out.
func storeLogger(t testing.TB) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
}

// uniqueDatabase names a database after the test, so that leftovers on a
// shared server can be traced, with a random suffix, so that reruns and
// parallel packages do not meet. It fits FerretDB's rule for names, which is
// stricter than MongoDB's: [a-zA-Z0-9_-]{1,63}.
func uniqueDatabase(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteRune('_')
		}
	}
	name := b.String()
	if len(name) > 40 {
		name = name[:40]
	}
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	return "t_" + name + "_" + hex.EncodeToString(suffix)
}

func dropDatabase(t testing.TB, uri, database string) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Logf("drop test database %s: %v", database, err)
		return
	}
	defer func() { _ = client.Disconnect(ctx) }()
	if err := client.Database(database).Drop(ctx); err != nil {
		t.Logf("drop test database %s: %v", database, err)
	}
}
