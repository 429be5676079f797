package reconcile_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"go.uber.org/zap/zaptest"
)

// orphanSightings is fakeStore's orphans collection, kept per store beside
// it: a Reconciler made anew on the same fakeStore, as after a controller
// restart, reads the sightings the earlier one recorded.
var orphanSightings = struct {
	sync.Mutex
	m map[*fakeStore]map[string]time.Time
}{m: map[*fakeStore]map[string]time.Time{}}

func (s *fakeStore) OrphanSince(_ context.Context, id string, t time.Time) (time.Time, error) {
	orphanSightings.Lock()
	defer orphanSightings.Unlock()
	if orphanSightings.m[s] == nil {
		orphanSightings.m[s] = map[string]time.Time{}
	}
	since, ok := orphanSightings.m[s][id]
	if !ok {
		since = t
		orphanSightings.m[s][id] = t
	}
	return since, nil
}

func (s *fakeStore) ForgetOrphan(_ context.Context, id string) error {
	orphanSightings.Lock()
	defer orphanSightings.Unlock()
	delete(orphanSightings.m[s], id)
	return nil
}

func (s *fakeStore) orphanSighting(id string) (time.Time, bool) {
	orphanSightings.Lock()
	defer orphanSightings.Unlock()
	since, ok := orphanSightings.m[s][id]
	return since, ok
}

// remove deletes the class behind the controller's back, as a store
// restored from an old backup, or a mistaken delete, would.
func (s *fakeStore) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.classes, id)
}

// orphanEnv is newEnv with the class's network and the given students'
// containers left in Docker and the class not in the store; the clock only
// moves when the test moves it.
func orphanEnv(t *testing.T, students ...string) *env {
	e := newEnv(t)
	e.frozen.Store(true)
	e.docker.seedNetwork(netName, map[string]string{api.LabelManagedBy: api.ManagedByValue, api.LabelClass: classID})
	for _, s := range students {
		e.docker.seedStudent(t, s, container.StateRunning)
	}
	// An orphan's collection is checkpointed in memory only (its class is
	// not in the store): what must hold before a removal is that the
	// student's manifest is stored.
	e.docker.beforeRemove = func(name string, labels map[string]string) {
		if student := labels[api.LabelStudent]; student != "" && !e.manifestStored(student) {
			e.mu.Lock()
			e.removedUnsafely = append(e.removedUnsafely, name)
			e.mu.Unlock()
		}
	}
	return e
}

// restart replaces the reconciler with a new one on the same store, Docker
// and object store, as a controller restart does.
func (e *env) restart(s reconcile.Store) {
	e.rec = reconcile.New(s, e.docker, e.art, policy.Default(), reconcile.Options{
		Domain: domain, TraefikContainer: traefikName, CollectTimeout: 10 * time.Second, Now: e.now,
	}, zaptest.NewLogger(e.t))
}

// manifestStored reports whether a manifest of the student in some run of
// the class is in the object store.
func (e *env) manifestStored(student string) bool {
	e.art.mu.Lock()
	defer e.art.mu.Unlock()
	for key := range e.art.objects {
		if strings.HasPrefix(key, "classes/"+classID+"/") && strings.HasSuffix(key, "/"+student+"/manifest.json") {
			return true
		}
	}
	return false
}

// A controller that restarts more often than the grace period still reaps
// orphans once the grace has passed since they were first seen: the first
// sighting is kept in the store, not in the reconciler's memory.
func TestOrphanGraceSurvivesRestarts(t *testing.T) {
	e := orphanEnv(t, "alice", "bob")
	grace := reconcile.DefaultOrphanGrace
	first := e.now()

	res, err := e.pass()
	if err != nil || len(res.Plan) != 0 || res.RequeueAfter != grace {
		t.Fatalf("first sighting: plan %q, requeue %v, err %v; want nothing done and a requeue after %v", res.Plan, res.RequeueAfter, err, grace)
	}
	if since, ok := e.store.orphanSighting(classID); !ok || !since.Equal(first) {
		t.Errorf("sighting in the store = %v (%v), want %v", since, ok, first)
	}

	// Restarted every minute: each new controller waits only what is left.
	for i := 1; i < 5; i++ {
		e.advance(time.Minute)
		e.restart(e.store)
		res, err := e.pass()
		if want := grace - time.Duration(i)*time.Minute; err != nil || len(res.Plan) != 0 || res.RequeueAfter != want {
			t.Fatalf("restart %d, %v after the first sighting: plan %q, requeue %v, err %v; want a requeue after %v",
				i, e.now().Sub(first), res.Plan, res.RequeueAfter, err, want)
		}
		if w := e.docker.writes(); len(w) != 0 {
			t.Fatalf("restart %d: docker writes within the grace period: %v", i, w)
		}
	}

	e.advance(time.Minute)
	e.restart(e.store)
	res, err = e.pass()
	if err != nil || !res.Converged {
		t.Fatalf("fifth restart, at the end of the grace: converged %v, err %v, plan:\n%s", res.Converged, err, res.Plan)
	}
	if got := e.docker.classContainers(); len(got) != 0 {
		t.Errorf("containers left after the grace period: %v", got)
	}
	if _, ok := e.docker.network(netName); ok {
		t.Errorf("the orphan's network was left")
	}
	for _, s := range []string{"alice", "bob"} {
		if !e.manifestStored(s) {
			t.Errorf("%s's work was not collected", s)
		}
	}
	if since, ok := e.store.orphanSighting(classID); ok {
		t.Errorf("the sighting of a reaped orphan is kept (since %v)", since)
	}
}

// failingOrphans is a store that cannot say when an orphan was first seen.
type failingOrphans struct {
	*fakeStore
	err error
}

func (s failingOrphans) OrphanSince(context.Context, string, time.Time) (time.Time, error) {
	return time.Time{}, s.err
}

// Without the first sighting nothing is reaped, however long ago it was:
// the pass fails, to be retried.
func TestOrphanNotReapedWhenItsSightingCannotBeRead(t *testing.T) {
	e := orphanEnv(t, "alice")
	long := e.now().Add(-time.Hour)
	if _, err := e.store.OrphanSince(context.Background(), classID, long); err != nil {
		t.Fatal(err)
	}

	down := errors.New("store unavailable")
	e.restart(failingOrphans{e.store, down})
	res, err := e.pass()
	if !errors.Is(err, down) || res.Converged || len(res.Plan) != 0 {
		t.Fatalf("pass without the sighting: converged %v, err %v, plan %q; want the store's error and nothing done", res.Converged, err, res.Plan)
	}
	if w := e.docker.writes(); len(w) != 0 {
		t.Errorf("docker writes without the sighting: %v", w)
	}

	// The store answers again: the grace has long passed.
	e.restart(e.store)
	if res := e.mustConverge(); len(res.Plan) == 0 {
		t.Errorf("nothing reaped an hour after the first sighting")
	}
	if got := e.docker.classContainers(); len(got) != 0 || !e.manifestStored("alice") {
		t.Errorf("containers left %v; alice collected %v", got, e.manifestStored("alice"))
	}
}

// A class that comes back clears its sighting: orphaned again later, it
// gets a whole grace period again.
func TestOrphanGraceStartsOverAfterTheClassCameBack(t *testing.T) {
	e := orphanEnv(t, "alice")
	grace := reconcile.DefaultOrphanGrace
	if res, err := e.pass(); err != nil || res.RequeueAfter != grace {
		t.Fatalf("first sighting: requeue %v, err %v", res.RequeueAfter, err)
	}

	// Restored within the grace, and Up: alice's sandbox is adopted.
	e.advance(time.Minute)
	e.putClass(api.PhaseUp, "alice")
	e.mustConverge()
	if since, ok := e.store.orphanSighting(classID); ok {
		t.Fatalf("a class back in the store keeps its orphan sighting (since %v)", since)
	}

	// Deleted again, long after the first sighting: the grace starts now.
	e.advance(10 * time.Minute)
	e.store.remove(classID)
	e.docker.resetCalls()
	e.restart(e.store)
	res, err := e.pass()
	if err != nil || len(res.Plan) != 0 || res.RequeueAfter != grace {
		t.Fatalf("orphaned again: plan %q, requeue %v, err %v; want a whole grace period, %v", res.Plan, res.RequeueAfter, err, grace)
	}
	if w := e.docker.writes(); len(w) != 0 {
		t.Errorf("docker writes within the new grace period: %v", w)
	}
}
