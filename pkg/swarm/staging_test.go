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
	store := stagingStore(t)
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

// What a controller before this one left is swept at once: the staging
// objects made before this runtime was, except those it uses itself (a
// name is to the second); those made since stay until they are a day old.
func TestSweepStagingRemovesWhatAnEarlierControllerLeft(t *testing.T) {
	ctx := context.Background()
	store := stagingStore(t)
	started := time.Date(2026, 12, 1, 15, 8, 39, 871e6, time.UTC)
	r := &Runtime{staging: store, started: started, inUse: map[string]bool{}}
	// The one before stopped in the second this one started.
	before := stagingKey("c2", "alice", ".tar", started.Add(-600*time.Millisecond))
	using := stagingKey("c2", "bob", ".tar", started.Add(-time.Minute))
	since := stagingKey("c2", "carol", ".restore.tar", started.Add(100*time.Millisecond))
	// Named to the second by an earlier release: kept unless the whole
	// second is before the start.
	oldBefore := "staging/c2/dave/20261201T150838Z-0a1b2c3d4e5f.tar"
	oldSame := "staging/c2/erin/20261201T150839Z-0a1b2c3d4e5f.tar"
	for _, k := range []string{before, using, since, oldBefore, oldSame} {
		if _, err := store.PutStream(ctx, k, bytes.NewReader([]byte("work")), 4, "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
	}
	done := r.use(using)
	n, err := r.SweepStaging(ctx, started.Add(time.Hour))
	if err != nil || n != 2 {
		t.Errorf("sweep removed %d, %v; want 2", n, err)
	}
	want := []string{using, since, oldSame}
	slices.Sort(want)
	if keys, err := store.ListKeys(ctx, "staging/c2/"); err != nil || !slices.Equal(keys, want) {
		t.Errorf("staging after the sweep: %v, %v; want %v", keys, err, want)
	}
	done()
	if n, err := r.SweepStaging(ctx, started.Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("once no longer in use: removed %d, %v; want 1", n, err)
	}
}

// stagingStore is a real object store, its bucket made.
func stagingStore(t *testing.T) *artifacts.Store {
	t.Helper()
	store, err := artifacts.New(context.Background(), testenv.S3(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return store
}
