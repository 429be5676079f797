package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/store"
)

// preconditionFailed checks that err is a refused precondition that found
// the class at current (0: missing).
func preconditionFailed(t *testing.T, err error, current int64) {
	t.Helper()
	var pe *store.PreconditionError
	if !errors.Is(err, store.ErrPreconditionFailed) || !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a PreconditionError", err)
	}
	if pe.Current != current {
		t.Fatalf("PreconditionError says the class is at %d, want %d (%v)", pe.Current, current, err)
	}
}

func TestPutSpecIfVersion(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := t.Context()
	c := mustCreate(t, s, "cs101-a")

	mine := spec()
	mine.Students = append(mine.Students, "carol")
	theirs := spec()
	theirs.TTLSeconds = 3600

	// At the version read: written, generation and version bumped.
	got, err := s.PutSpecIfVersion(ctx, "cs101-a", mine, c.Version, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Spec, mine) || got.Generation != c.Generation+1 || got.Version != c.Version+1 {
		t.Fatalf("written %+v; want the new spec at generation %d, version %d", got, c.Generation+1, c.Version+1)
	}
	mustGetEqual(t, s, got)

	// At the version from before that write: refused, naming the current
	// version, and nothing is written.
	_, err = s.PutSpecIfVersion(ctx, "cs101-a", theirs, c.Version, nil)
	preconditionFailed(t, err, got.Version)
	mustGetEqual(t, s, got)

	// The same spec again at the current version: nothing to write.
	again, err := s.PutSpecIfVersion(ctx, "cs101-a", mine, got.Version, nil)
	if err != nil || again.Version != got.Version || again.Generation != got.Generation {
		t.Fatalf("same spec at the current version: %+v, %v; want the class unchanged", again, err)
	}
	// ...but at a stale version it is refused like any other write.
	_, err = s.PutSpecIfVersion(ctx, "cs101-a", mine, c.Version, nil)
	preconditionFailed(t, err, got.Version)

	// A status write moves the version on: a spec write based on the
	// version before it is refused too.
	st, err := s.UpdateStatus(ctx, "cs101-a", got.Version, api.ClassStatus{Phase: api.PhaseDown, ObservedGeneration: got.Generation})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.PutSpecIfVersion(ctx, "cs101-a", theirs, got.Version, nil)
	preconditionFailed(t, err, st.Version)

	// AnyVersion: whatever the version, as long as the class exists.
	anyV, err := s.PutSpecIfVersion(ctx, "cs101-a", theirs, store.AnyVersion, nil)
	if err != nil || !reflect.DeepEqual(anyV.Spec, theirs) || anyV.Version != st.Version+1 {
		t.Fatalf("AnyVersion on an existing class: %+v, %v", anyV, err)
	}

	// A class that does not exist fails either precondition and is not
	// created.
	for _, v := range []int64{store.AnyVersion, 1} {
		_, err = s.PutSpecIfVersion(ctx, "missing", spec(), v, nil)
		preconditionFailed(t, err, 0)
		if _, err := s.Get(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("version %d: a refused write created the class: %v", v, err)
		}
	}

	// The caller's own check runs first: who may not write the class
	// does not learn its version.
	refused := errors.New("not yours")
	_, err = s.PutSpecIfVersion(ctx, "cs101-a", mine, 1, func(*api.Class) error { return refused })
	if !errors.Is(err, refused) {
		t.Fatalf("check refusing: %v, want its error", err)
	}
}

// TestPutSpecIfVersionHasOneWinner: writers racing from the same version,
// over two connections, each with a spec of its own. Exactly one writes;
// every other is refused, never overwriting the winner, because the version
// is checked in the write's filter and not only on the read before it.
func TestPutSpecIfVersionHasOneWinner(t *testing.T) {
	t.Parallel()
	uri, db := testenv.StoreURI(t)
	clients := []*store.Store{testenv.OpenStore(t, uri, db), testenv.OpenStore(t, uri, db)}
	ctx := t.Context()
	mustCreate(t, clients[0], "c")

	const rounds, writers = 5, 8
	for round := range rounds {
		c, err := clients[0].Get(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var winners []int
		for i := range writers {
			wg.Go(func() {
				sp := spec()
				sp.Students = []string{fmt.Sprintf("s%d-%d", round, i)}
				_, err := clients[i%len(clients)].PutSpecIfVersion(ctx, "c", sp, c.Version, nil)
				switch {
				case err == nil:
					mu.Lock()
					winners = append(winners, i)
					mu.Unlock()
				case !errors.Is(err, store.ErrPreconditionFailed):
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("round %d: writers %v all wrote over version %d", round, winners, c.Version)
		}
		got, err := clients[1].Get(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("s%d-%d", round, winners[0])
		if got.Version != c.Version+1 || len(got.Spec.Students) != 1 || got.Spec.Students[0] != want {
			t.Fatalf("round %d: stored version %d students %v; want %d by the winner (%s)",
				round, got.Version, got.Spec.Students, c.Version+1, want)
		}
	}
}
