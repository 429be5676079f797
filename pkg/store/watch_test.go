package store_test

import (
	"context"
	"os"
	"testing"

	"github.com/homeroom/homeroom/internal/testenv"
)

// FerretDB has no change streams: the store must say so at once, so that
// the controller falls back to polling instead of waiting on a stream.
func TestWatchChangesRefusedWithoutChangeStreams(t *testing.T) {
	if testenvUsesRealMongo() {
		t.Skip("HOMEROOM_TEST_MONGO_URI names a server that may support change streams")
	}
	s := testenv.Store(t)
	if _, err := s.WatchChanges(context.Background()); err == nil {
		t.Fatal("the embedded FerretDB accepted a change stream; polling-only fallback untested")
	}
}

func testenvUsesRealMongo() bool { return os.Getenv("HOMEROOM_TEST_MONGO_URI") != "" }
