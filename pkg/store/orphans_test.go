package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
)

// The first sighting of an orphan is kept in the store: a later sighting,
// or another client (a restarted controller), reads the same time, until
// the sighting is forgotten.
func TestOrphanSince(t *testing.T) {
	t.Parallel()
	uri, database := testenv.StoreURI(t)
	s := testenv.OpenStore(t, uri, database)
	ctx := t.Context()
	t0 := time.Date(2030, 1, 2, 9, 0, 0, 123_000_000, time.UTC)

	if got, err := s.OrphanSince(ctx, "cs101-a", t0); err != nil || !got.Equal(t0) {
		t.Fatalf("first sighting = %v, %v; want %v", got, err, t0)
	}
	if got, err := s.OrphanSince(ctx, "cs101-a", t0.Add(time.Minute)); err != nil || !got.Equal(t0) {
		t.Errorf("a later sighting = %v, %v; want the first, %v", got, err, t0)
	}
	if got, err := s.OrphanSince(ctx, "cs101-b", t0.Add(2*time.Minute)); err != nil || !got.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("another class = %v, %v; want its own first sighting", got, err)
	}

	restarted := testenv.OpenStore(t, uri, database)
	if got, err := restarted.OrphanSince(ctx, "cs101-a", t0.Add(4*time.Minute)); err != nil || !got.Equal(t0) {
		t.Errorf("after a restart = %v, %v; want the first sighting, %v", got, err, t0)
	}

	if err := s.ForgetOrphan(ctx, "cs101-a"); err != nil {
		t.Fatal(err)
	}
	if err := s.ForgetOrphan(ctx, "cs101-a"); err != nil {
		t.Errorf("forgetting twice: %v", err)
	}
	if err := s.ForgetOrphan(ctx, "never-seen"); err != nil {
		t.Errorf("forgetting an unknown class: %v", err)
	}
	t1 := t0.Add(time.Hour)
	if got, err := s.OrphanSince(ctx, "cs101-a", t1); err != nil || !got.Equal(t1) {
		t.Errorf("after ForgetOrphan = %v, %v; want a new first sighting, %v", got, err, t1)
	}
	if got, err := s.OrphanSince(ctx, "cs101-b", t1); err != nil || !got.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("forgetting one class moved another's: %v, %v", got, err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if got, err := s.OrphanSince(cancelled, "cs101-c", t0); err == nil {
		t.Errorf("OrphanSince without a store answer = %v, nil; want an error", got)
	}
}

// Sightings racing to be the first agree on one.
func TestOrphanSinceUnderContention(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := t.Context()
	t0 := time.Date(2030, 1, 2, 9, 0, 0, 0, time.UTC)
	for round := range 5 {
		id := "race-" + string(rune('a'+round))
		got := make([]time.Time, 6)
		var wg sync.WaitGroup
		for i := range got {
			wg.Go(func() {
				var err error
				if got[i], err = s.OrphanSince(ctx, id, t0.Add(time.Duration(i)*time.Second)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for _, g := range got[1:] {
			if !g.Equal(got[0]) {
				t.Fatalf("round %d: first sightings disagree: %v", round, got)
			}
		}
	}
}
