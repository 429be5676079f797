package swarm

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

// A sweep removes the staging objects older than StagingMaxAge, and those
// named before the time was in the name; it keeps the ones that may be in
// use and everything outside staging.
func TestSweepStagingRemovesOnlyWhatWasLeftBehind(t *testing.T) {
	ctx := context.Background()
	store, err := artifacts.New(ctx, testenv.S3(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	r := &Runtime{staging: store}
	now := time.Now()
	old := stagingKey("c1", "alice", ".tar", now.Add(-StagingMaxAge-time.Minute))
	fresh := stagingKey("c1", "bob", ".restore.tar", now.Add(-StagingMaxAge+time.Minute))
	unnamed := "staging/c1/carol/0a1b2c3d4e5f.tar"
	work := "classes/c1/20261201T090000Z-abcdef/alice/files/workspace/notes.txt"
	for _, k := range []string{old, fresh, unnamed, work} {
		if _, err := store.PutStream(ctx, k, bytes.NewReader([]byte("work")), 4, "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
	}
	n, err := r.SweepStaging(ctx, now)
	if err != nil || n != 2 {
		t.Errorf("sweep removed %d, %v; want 2", n, err)
	}
	if keys, err := store.ListKeys(ctx, "staging/"); err != nil || !slices.Equal(keys, []string{fresh}) {
		t.Errorf("staging after the sweep: %v, %v; want only %s", keys, err, fresh)
	}
	if keys, err := store.ListKeys(ctx, "classes/"); err != nil || !slices.Equal(keys, []string{work}) {
		t.Errorf("the class's work after the sweep: %v, %v", keys, err)
	}
}
